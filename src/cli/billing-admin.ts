import { processIo } from './admin/io';
import { runCli } from './admin/run';

/**
 * billing-admin: the admin scripts' CLI. bin/billing-admin.js calls main() from the built copy in
 * dist/; in development `npm run --silent billing-admin -- <command>` runs this file through tsx.
 */
export function main(argv = process.argv.slice(2)): void {
  // `billing-admin audit --all | head` closes the pipe early: that is not a failure worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  void runCli(argv, { io: processIo() }).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) main();

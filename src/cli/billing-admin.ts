import { processIo } from './admin/io';
import { runCli } from './admin/run';

/**
 * billing-admin: the admin scripts' CLI (bin/billing-admin.js runs the built copy; in development
 * `npm run --silent billing-admin -- <command>` runs this file through tsx).
 */
if (require.main === module) {
  // `billing-admin audit --all | head` closes the pipe early: that is not a failure worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  void runCli(process.argv.slice(2), { io: processIo() }).then((code) => {
    process.exitCode = code;
  });
}

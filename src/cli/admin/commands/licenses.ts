import { action, type Deps, type Program } from '../context';
import { jsonText } from '../io';
import { openKeyFile } from '../key-file';

/** An offline license: the license alone on stdout (LICENSE=$(...)), or in a 0600 file with --output. */
export function licensesCommands(program: Program, deps: Deps): void {
  const licenses = program.command('licenses').description('licenses for instances that cannot reach the service (offline activation)');

  licenses
    .command('issue-offline <customerId>')
    .description('issue a license bound to an air-gapped instance’s fingerprint; it takes a seat until it expires (printed alone on stdout)')
    .requiredOption('--fingerprint <fingerprint>', 'the instance’s own id (8-128 of A-Z a-z 0-9 . _ : -)')
    .option('--name <name>', 'a name for the instance')
    .option('--hostname <hostname>', 'the instance’s host name')
    .option('--ttl <duration>', 'how long the license is valid: 1h up to 3650d (default 365d)')
    .option('--output <file>', 'write the license (with --json: the answer) to this file, created readable by you only (0600), not to stdout')
    .action(
      action(deps, async (ctx, o, [id]) => {
        const file = typeof o.output === 'string' ? openKeyFile(o.output) : null;
        try {
          const r = await ctx.client().issueOfflineLicense(id, {
            fingerprint: o.fingerprint,
            name: o.name,
            hostname: o.hostname,
            ttl: o.ttl,
          });
          const about = `Issued an offline license for ${r.claims.sub}, instance ${o.fingerprint}, valid until ${new Date(r.claims.exp * 1000).toISOString()}.`;
          if (file) {
            file.write(ctx.json ? jsonText(r) : `${r.license}\n`);
            ctx.say(`${about}\nThe license is in ${file.path} (readable by you only); verify it with the keys at ${r.jwks_url}.`);
          } else {
            ctx.print(r, () => {
              ctx.out(`${r.license}\n`);
              ctx.say(`${about}\nCarry it to the instance; it verifies it with the keys at ${r.jwks_url}.`);
            });
          }
        } finally {
          file?.close();
        }
      }),
    );
}

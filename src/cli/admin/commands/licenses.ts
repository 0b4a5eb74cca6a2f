import fs from 'node:fs';
import { action, type Deps, type Program } from '../context';
import { UsageError } from '../failure';
import { jsonText } from '../io';
import { openKeyFile } from '../key-file';

/** What an activation request (`billing-client activation-request`, format activation-request/1) holds for the admin. */
interface ActivationRequestBody {
  fingerprint: string;
  name?: string;
  hostname?: string;
  instance_key?: { kty: 'OKP'; crv: 'Ed25519'; x: string };
}

/** The body of an activation request file; its content is checked by the service like any body. */
function readActivationRequest(file: string): { customerId: string | null; body: ActivationRequestBody } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not JSON: give the file billing-client activation-request wrote`);
  }
  const r = parsed as { format?: unknown; customer_id?: unknown; body?: unknown };
  if (typeof parsed !== 'object' || parsed === null || r.format !== 'activation-request/1' || typeof r.body !== 'object' || r.body === null) {
    throw new UsageError(`${file} is not an activation request (format activation-request/1, with a body)`);
  }
  return { customerId: typeof r.customer_id === 'string' ? r.customer_id : null, body: r.body as ActivationRequestBody };
}

/** An offline license: the license alone on stdout (LICENSE=$(...)), or in a 0600 file with --output. */
export function licensesCommands(program: Program, deps: Deps): void {
  const licenses = program.command('licenses').description('licenses for instances that cannot reach the service (offline activation)');

  licenses
    .command('issue-offline <customerId>')
    .description('issue a license bound to an air-gapped instance’s fingerprint; it takes a seat until it expires (printed alone on stdout)')
    .option('--fingerprint <fingerprint>', 'the instance’s own id (8-128 of A-Z a-z 0-9 . _ : -); or --request')
    .option(
      '--request <file>',
      'the activation request the instance wrote (billing-client activation-request): its fingerprint, name, hostname and instance key',
    )
    .option('--name <name>', 'a name for the instance')
    .option('--hostname <hostname>', 'the instance’s host name')
    .option('--ttl <duration>', 'how long the license is valid: 1h up to 3650d (default 365d)')
    .option('--output <file>', 'write the license (with --json: the answer) to this file, created readable by you only (0600), not to stdout')
    .action(
      action(deps, async (ctx, o, [id]) => {
        const asked = typeof o.request === 'string' ? readActivationRequest(o.request) : null;
        if (!asked && o.fingerprint === undefined) throw new UsageError('give --fingerprint, or --request with the instance’s activation request');
        if (asked && o.fingerprint !== undefined && o.fingerprint !== asked.body.fingerprint) {
          throw new UsageError('--fingerprint differs from the activation request’s: give one of them');
        }
        if (asked?.customerId && asked.customerId !== id) {
          throw new UsageError(`the activation request is for customer ${asked.customerId}, not ${id}`);
        }
        const fingerprint = asked?.body.fingerprint ?? o.fingerprint!;
        const file = typeof o.output === 'string' ? openKeyFile(o.output) : null;
        try {
          const r = await ctx.client().issueOfflineLicense(id, {
            fingerprint,
            name: o.name ?? asked?.body.name,
            hostname: o.hostname ?? asked?.body.hostname,
            ...(asked?.body.instance_key ? { instance_key: asked.body.instance_key } : {}),
            ttl: o.ttl,
          });
          const about = `Issued an offline license for ${r.claims.sub}, instance ${fingerprint}, valid until ${new Date(r.claims.exp * 1000).toISOString()}.`;
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

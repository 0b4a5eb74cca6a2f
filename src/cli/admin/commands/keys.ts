import { randomUUID } from 'node:crypto';
import { InvalidArgumentError } from '@commander-js/extra-typings';
import type { ApiKey, RotatedKeys } from '../admin-client';
import { action, collect, int, type Ctx, type Deps, type Program } from '../context';
import { table } from '../io';
import { progress } from '../progress';
import { openKeyFile } from '../key-file';
import { emitNewKey, OUTPUT_HELP } from './customers';

const MAX_GRACE = 30 * 24 * 3600;

const keyTable = (rows: ApiKey[]) =>
  table(rows, [
    { header: 'id', value: (k) => k.id },
    { header: 'name', value: (k) => k.name ?? '' },
    { header: 'start', value: (k) => k.start },
    { header: 'status', value: (k) => k.status },
    { header: 'created', value: (k) => k.created_at },
    { header: 'last used', value: (k) => k.last_used_at ?? '-' },
    { header: 'expires', value: (k) => k.expires_at ?? '-' },
  ]);

async function issue(ctx: Ctx, o: { output?: string }, id: string, body: { name?: string; grace_period_seconds?: number; keep_existing?: boolean }) {
  // A file that cannot take the key is refused before the key is made.
  if (o.output !== undefined) openKeyFile(o.output).close();
  const r = await ctx.client().issueKey(id, body);
  const ended = r.ended_key_ids.length
    ? `; ${r.ended_key_ids.length} older key(s) ${body.grace_period_seconds ? `valid for ${body.grace_period_seconds} s more` : 'revoked now'}`
    : '';
  emitNewKey(ctx, o, r, r.api_key, `Issued key ${r.key.id} for customer ${id}${ended}.`);
}

/**
 * Rotates page after page, every request named by the run's id (Idempotency-Key). Each page is
 * committed by the service before we see it, so its keys are written at once (with --output, to a
 * 0600 file, flushed, before the next page is asked for). An answer lost on the way (a network
 * failure after the commit) is asked for again with the same id: the service then replaces the keys
 * nobody received. If the command still stops, the run id and the cursor to resume from are said on stderr.
 */
async function rotateAll(ctx: Ctx, o: { grace: number; customer?: string[]; runId?: string; output?: string; cursor?: string; pageSize?: number }) {
  const grace = o.grace;
  const ids = o.customer;
  const run = o.runId ?? randomUUID();
  const file = o.output !== undefined ? openKeyFile(o.output) : null;
  const write = (text: string) => (file ? file.write(text) : ctx.out(text));
  const bar = progress(ctx.io, 'rotating');
  let cursor = o.cursor;
  let rotated = 0;
  let pages = 0;
  const skipped: RotatedKeys['skipped'] = [];
  try {
    for (;;) {
      const page = await ctx
        .client()
        .rotateKeys(ids ? { grace_period_seconds: grace, customer_ids: ids } : { grace_period_seconds: grace, limit: o.pageSize, cursor }, run);
      pages++;
      rotated += page.rotated;
      skipped.push(...page.skipped);
      if (ctx.json) write(`${JSON.stringify(page)}\n`);
      else write(page.keys.map((k) => `${k.customer_id}\t${k.api_key}\n`).join(''));
      bar.update(rotated, pages);
      if (!page.next_cursor || ids) break;
      cursor = page.next_cursor;
    }
  } catch (err) {
    bar.done();
    file?.close();
    const resume = ids ? `--run-id ${run}` : `--run-id ${run}${cursor ? ` --cursor ${cursor}` : ''}`;
    ctx.say(`${rotated} customer(s) rotated before the failure; resume with the same options and ${resume}`);
    throw err;
  }
  bar.done();
  file?.close();
  if (file) ctx.say(`The new keys are in ${file.path} (readable by you only).`);
  if (ctx.json) return;
  for (const s of skipped) ctx.say(`skipped ${s.customer_id}: ${s.reason}`);
  ctx.say(`Rotated ${rotated} customer(s) in ${pages} request(s); older keys ${grace ? `stay valid for ${grace} s` : 'are revoked'}.`);
  if (rotated && !file) ctx.say('The new keys are above (customer id, key), shown this once: store them now.');
}

export function keysCommands(program: Program, deps: Deps): void {
  const keys = program.command('keys').description('issue, rotate, list and revoke customers’ API keys');

  keys
    .command('issue <customerId>')
    .description('issue a key (printed once, alone on stdout): rotates (older keys end now, or after --grace), or --keep-existing adds one')
    .option('--grace <seconds>', `older keys stay valid this long (0-${MAX_GRACE})`, int(0, MAX_GRACE))
    .option('--keep-existing', 'add a key beside the others (a second site) instead of rotating')
    .option('--name <name>', 'a name for the key')
    .option('--output <file>', OUTPUT_HELP)
    .action(
      action(deps, async (ctx, o, [id]) => {
        await issue(ctx, o, id, {
          name: o.name,
          grace_period_seconds: o.grace,
          keep_existing: o.keepExisting ? true : undefined,
        });
      }),
    );

  keys
    .command('rotate <customerId>')
    .description('rotate a customer’s key: a new key (printed once), older keys valid for --grace seconds (0: revoked now)')
    .requiredOption('--grace <seconds>', `grace period for the older keys (0-${MAX_GRACE})`, int(0, MAX_GRACE))
    .option('--name <name>', 'a name for the new key')
    .option('--output <file>', OUTPUT_HELP)
    .action(
      action(deps, async (ctx, o, [id]) => {
        await issue(ctx, o, id, { name: o.name, grace_period_seconds: o.grace });
      }),
    );

  keys
    .command('rotate-all')
    .description('rotate the keys of every active customer (page by page), or of --customer ones; prints "customer-id<TAB>key" lines')
    .requiredOption('--grace <seconds>', `grace period for the older keys (0-${MAX_GRACE}); required, so nothing is revoked by accident`, int(0, MAX_GRACE))
    .option('--customer <id>', 'only this customer (repeatable, up to 1000)', collect)
    .option('--page-size <n>', 'customers a request (1-1000)', int(1, 1000))
    .option('--cursor <cursor>', 'resume a rotation that stopped (with its --run-id)')
    .option('--run-id <id>', 'the run to resume (said when one stops); a new run gets a new id', (v: string) => {
      if (!/^[\x21-\x7e]{1,190}$/.test(v)) throw new InvalidArgumentError('must be 1-190 printable characters without spaces');
      return v;
    })
    .option('--output <file>', 'write the "customer-id<TAB>key" lines to this file, created readable by you only (0600), page by page')
    .action(action(deps, (ctx, o) => rotateAll(ctx, o)));

  keys
    .command('list <customerId>')
    .description('list a customer’s keys (never a secret)')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().listKeys(id);
        ctx.print(r, () => (r.data.length ? ctx.out(keyTable(r.data)) : ctx.say('no keys')));
      }),
    );

  keys
    .command('revoke <customerId> <keyId>')
    .description('revoke a key now, on every instance')
    .action(
      action(deps, async (ctx, _o, [id, keyId]) => {
        const r = await ctx.client().revokeKey(id, keyId);
        ctx.print(r, () => ctx.say(`Revoked key ${r.key.id} (${r.key.start}…).`));
      }),
    );
}

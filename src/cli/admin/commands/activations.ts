import type { Activation } from '../admin-client';
import { action, type Deps, type Program } from '../context';
import { table } from '../io';

const activationTable = (rows: Activation[]) =>
  table(rows, [
    { header: 'fingerprint', value: (a) => a.fingerprint },
    { header: 'name', value: (a) => a.name ?? '' },
    { header: 'hostname', value: (a) => a.hostname ?? '' },
    { header: 'activated', value: (a) => a.created_at ?? '' },
    { header: 'last seen', value: (a) => a.last_seen_at ?? '-' },
    { header: 'expires', value: (a) => a.expires_at ?? '-' },
    { header: 'bundles', value: (a) => bundlesCell(a.bundles) },
  ]);

/** An air-gapped instance's bundles: the highest seq received and the seqs missing below it (the first ten). */
function bundlesCell(b: Activation['bundles']): string {
  if (!b) return '-';
  const missing = b.missing_seq;
  if (missing.length === 0) return `seq ${b.last_seq}`;
  const shown = missing.slice(0, 10).join(' ');
  return `seq ${b.last_seq}, missing ${shown}${missing.length > 10 ? ` (+${missing.length - 10})` : ''}`;
}

export function activationsCommands(program: Program, deps: Deps): void {
  const activations = program.command('activations').description('a customer’s activated instances (counted against the plan’s limits.instances)');

  activations
    .command('list <customerId>')
    .description('the customer’s active instances, oldest first')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().listActivations(id);
        ctx.print(r, () => (r.data.length ? ctx.out(activationTable(r.data)) : ctx.say('no active instances')));
      }),
    );

  activations
    .command('release <customerId> <fingerprint>')
    .description('release an instance, freeing its seat')
    .action(
      action(deps, async (ctx, _o, [id, fingerprint]) => {
        const r = await ctx.client().releaseActivation(id, fingerprint);
        ctx.print(r, () => ctx.say(`Released instance ${r.activation.fingerprint} of customer ${id}.`));
      }),
    );
}

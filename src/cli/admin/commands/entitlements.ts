import type { Command } from '@commander-js/extra-typings';
import type { CustomerDeal, OverridesBody } from '../admin-client';
import { action, collect, readJsonFile, type Ctx, type Deps, type Program } from '../context';
import { dateFlag } from '../dates';
import { details, table } from '../io';
import { UsageError } from '../failure';
import { countOrUnlimited, limitsOf, limitsText, overageOf, overageText, thresholdsOf } from './entitlement-flags';

type Metered = CustomerDeal['metered'][string];

const meteredTable = (rows: [string, Metered][]) =>
  table(rows, [
    { header: 'metric', value: ([m]) => m },
    { header: 'allowance', value: ([, s]) => s.allowance, right: true },
    { header: 'used', value: ([, s]) => s.used, right: true },
    { header: 'percent', value: ([, s]) => (s.percent === null ? '-' : `${s.percent}%`), right: true },
    { header: 'crossed', value: ([, s]) => s.thresholds_crossed.map((p) => `${p}%`).join(',') || '-' },
    { header: 'overage', value: ([, s]) => s.overage },
    { header: 'blocks at', value: ([, s]) => s.blocks_at ?? 'never', right: true },
    { header: 'state', value: ([, s]) => s.state },
  ]);

function overridesLines(o: NonNullable<CustomerDeal['overrides']>): [string, unknown][] {
  const features = [...o.features.add.map((f) => `+${f}`), ...o.features.remove.map((f) => `-${f}`)].join(' ');
  return [
    ['overrides', o.applies ? 'apply' : `ended at ${o.expires_at} (no longer apply)`],
    ['  features', features || '-'],
    ['  limits', limitsText(o.limits) || '-'],
    ['  instances', o.instances === undefined ? '- (the plan’s)' : (o.instances ?? 'unlimited')],
    ['  overage', overageText(o.overage) || '-'],
    ['  thresholds', o.thresholds?.join(', ') ?? '- (the plan’s)'],
    ['  note', o.note ?? '-'],
    ['  expires', o.expires_at ?? 'never'],
    ['  updated', o.updated_at],
  ];
}

/** The deal for people: where it comes from, what applies now, then each metered limit this period. */
function printDeal(ctx: Ctx, id: string, d: CustomerDeal): void {
  const e = d.effective;
  ctx.out(
    details([
      ['customer', id],
      ['plan', d.plan ? `${d.plan.code} (${d.plan.name})` : '- (none: no subscription)'],
      ...(d.overrides ? overridesLines(d.overrides) : ([['overrides', 'none']] as [string, unknown][])),
      ['effective', 'what applies now'],
      ['  features', e.features.join(', ') || '-'],
      ['  limits', limitsText(e.limits) || '-'],
      ['  overage', overageText(e.overage) || '-'],
      ['  thresholds', e.thresholds.join(', ')],
      ['period', `${d.period.start} .. ${d.period.end}`],
    ]),
  );
  const metered = Object.entries(d.metered);
  if (metered.length) ctx.out(`\n${meteredTable(metered)}`);
}

type GlobalOptions = ReturnType<Program['opts']>;

/** billing-admin customers entitlements get|set|clear: a customer's own deal (docs/LICENSES.md, "A customer's own deal"). */
export function entitlementsCommands(customers: Command<[], Record<string, never>, GlobalOptions>, deps: Deps): void {
  const entitlements = customers
    .command('entitlements')
    .description('a customer’s own deal: overrides of its plan (features, limits, instances, overage, thresholds), what applies now, metered usage');

  entitlements
    .command('get <id>')
    .description('the customer’s plan, its overrides, what it is entitled to now, and each metered limit this period')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().getEntitlements(id);
        ctx.print(r, () => printDeal(ctx, id, r));
      }),
    );

  entitlements
    .command('set <id>')
    .description('replace the customer’s overrides with those given (flags, or --file; flags given too override the file)')
    .option('--file <path>', 'the request body as JSON (the API’s fields; "-" reads stdin)')
    .option('--add-feature <name>', 'a feature the plan does not give (repeatable)', collect)
    .option('--remove-feature <name>', 'a feature of the plan it does not get (repeatable)', collect)
    .option('--limit <name=value>', 'a limit in place of the plan’s: a whole number, or name=unlimited (repeatable); not instances', collect)
    .option('--instances <n>', 'how many instances may activate at once, in place of the plan’s limits.instances: a number or "unlimited"')
    .option('--overage <metric=policy>', 'past a metered allowance: block, allow, or a tolerance 1.1-3 (1.25: stop at 125%) (repeatable)', collect)
    .option('--threshold <percent>', 'tell the customer at this percentage of each allowance (repeatable; replaces the plan’s list)', collect)
    .option('--note <text>', 'why (kept with the overrides and in the audit log)')
    .option('--expires-at <date>', 'the overrides stop applying then (2027-01-01, 2027-01-01T09:30, with an offset); default: until cleared', dateFlag)
    .action(
      action(deps, async (ctx, o, [id]) => {
        const file = o.file ? ((await readJsonFile(ctx.io, o.file)) as OverridesBody) : null;
        const body: OverridesBody = { ...file };
        if (o.addFeature !== undefined || o.removeFeature !== undefined) {
          body.features = { add: o.addFeature ?? file?.features?.add ?? [], remove: o.removeFeature ?? file?.features?.remove ?? [] };
        }
        if (o.limit !== undefined) body.limits = { ...file?.limits, ...limitsOf(o.limit) };
        if (o.instances !== undefined) body.instances = countOrUnlimited(o.instances, '--instances');
        if (o.overage !== undefined) body.overage = { ...file?.overage, ...overageOf(o.overage) };
        if (o.threshold !== undefined) body.thresholds = thresholdsOf(o.threshold);
        if (o.note !== undefined) body.note = o.note;
        if (o.expiresAt !== undefined) body.expires_at = o.expiresAt;
        if (file === null && Object.keys(body).length === 0)
          throw new UsageError('nothing to set: give a flag or --file (to remove the overrides: customers entitlements clear)');
        const r = await ctx.client().setEntitlements(id, body);
        ctx.print(r, () => {
          ctx.say(`Overrides of customer ${id} replaced.`);
          printDeal(ctx, id, r);
        });
      }),
    );

  entitlements
    .command('clear <id>')
    .description('remove the customer’s overrides: its plan alone from now on')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().clearEntitlements(id);
        ctx.print(r, () => {
          ctx.say(`Overrides of customer ${id} cleared: its plan alone applies.`);
          printDeal(ctx, id, r);
        });
      }),
    );
}

import type { Command, OptionValues } from '@commander-js/extra-typings';
import type { BodyOf, Plan } from '../admin-client';
import { action, collect, readJsonFile, type Deps, type Program } from '../context';
import { details, table } from '../io';
import { UsageError } from '../failure';
import { limitsOf, overageOf, overageText, pairs, thresholdsOf } from './entitlement-flags';

type CreateBody = BodyOf<'/api/plans', 'post'>;
type UpdateBody = BodyOf<'/api/plans/{code}', 'patch'>;
type Entitlements = CreateBody['entitlements'];
type LocalPricing = NonNullable<CreateBody['local_pricing']>;

const planTable = (rows: Plan[]) =>
  table(rows, [
    { header: 'code', value: (p) => p.code },
    { header: 'name', value: (p) => p.name },
    { header: 'status', value: (p) => p.status },
    { header: 'features', value: (p) => p.entitlements.features.join(',') },
    { header: 'limits', value: (p) => limitsText(p.entitlements.limits) },
    { header: 'stripe price', value: (p) => p.stripe_price_id ?? '-' },
  ]);

const limitsText = (l: Record<string, number | null>) =>
  Object.entries(l)
    .map(([k, v]) => `${k}=${v ?? 'unlimited'}`)
    .join(',');

const planDetails = (p: Plan) =>
  details([
    ['code', p.code],
    ['name', p.name],
    ['status', p.status],
    ['features', p.entitlements.features.join(', ') || '-'],
    ['limits', limitsText(p.entitlements.limits) || '-'],
    ['overage', overageText(p.entitlements.overage) || '-'],
    ['thresholds', p.entitlements.thresholds?.join(', ') ?? '80, 100 (default)'],
    ['stripe price', p.stripe_price_id ?? '-'],
    [
      'metered prices',
      Object.entries(p.metered_prices)
        .map(([m, price]) => `${m}=${price}`)
        .join(', ') || '-',
    ],
    ['local pricing', localPricingText(p.local_pricing) || '-'],
    ['created', p.created_at],
    ['updated', p.updated_at],
  ]);

const localPricingText = (lp: Plan['local_pricing']) =>
  lp ? [`${lp.currency} ${lp.unit_amount}`, ...Object.entries(lp.metered).map(([m, price]) => `${m}=${price}`)].join(', ') : '';

/** The local pricing flags planFlags declares. */
type PricingFlags = { currency?: string; unitAmount?: string; unitPrice?: string[] };

const hasPricingFlags = (o: PricingFlags) => o.currency !== undefined || o.unitAmount !== undefined || o.unitPrice !== undefined;

/**
 * The local pricing the flags describe, on top of `base` (the file's, or the plan's current one):
 * --unit-price adds to the metered prices, the others replace theirs. A plan without one needs
 * --currency and --unit-amount.
 */
function localPricingFrom(o: PricingFlags, base: LocalPricing | null | undefined): LocalPricing {
  let unitAmount = base?.unit_amount;
  if (o.unitAmount !== undefined) {
    if (!/^\d+$/.test(o.unitAmount))
      throw new UsageError(`--unit-amount takes a whole number of minor units (4900: 49.00), not ${JSON.stringify(o.unitAmount)}`);
    unitAmount = Number(o.unitAmount);
  }
  const currency = o.currency ?? base?.currency;
  if (currency === undefined || unitAmount === undefined)
    throw new UsageError('local pricing needs --currency and --unit-amount (or "local_pricing" in --file)');
  return { currency, unit_amount: unitAmount, metered: { ...base?.metered, ...Object.fromEntries(pairs(o.unitPrice, '--unit-price')) } };
}

/** The entitlement flags planFlags declares. */
type EntitlementFlags = { feature?: string[]; limit?: string[]; overage?: string[]; threshold?: string[] };

const hasEntitlementFlags = (o: EntitlementFlags) => o.feature !== undefined || o.limit !== undefined || o.overage !== undefined || o.threshold !== undefined;

/** The entitlements the flags describe, on top of `base` (the file's, or the plan's current ones). */
function entitlementsFrom(o: EntitlementFlags, base: Entitlements): Entitlements {
  const out: Entitlements = { ...base, features: o.feature ?? base.features, limits: { ...base.limits, ...limitsOf(o.limit) } };
  if (o.overage !== undefined) out.overage = { ...base.overage, ...overageOf(o.overage) };
  const thresholds = thresholdsOf(o.threshold);
  if (thresholds !== undefined) out.thresholds = thresholds;
  return out;
}

function planFlags<A extends unknown[], O extends OptionValues, G extends OptionValues>(cmd: Command<A, O, G>) {
  return cmd
    .option('--file <path>', 'the request body as JSON (the API’s fields; "-" reads stdin); flags given too override it')
    .option('--name <name>', 'display name')
    .option('--feature <name>', 'a feature flag (repeatable; replaces the list)', collect)
    .option('--limit <name=value>', 'a numeric limit, or name=unlimited (repeatable); instances=N is how many instances may activate', collect)
    .option(
      '--overage <metric=policy>',
      'past a metered limit’s allowance (a limit named after a usage metric): block, allow, or a tolerance 1.1-3 (1.25: stop at 125%) (repeatable)',
      collect,
    )
    .option('--threshold <percent>', 'tell the customer at this percentage of each allowance (repeatable; replaces the list; default 80 and 100)', collect)
    .option('--stripe-price <id>', 'Stripe price id (price_…)')
    .option('--metered-price <metric=price>', 'Stripe price of a metered metric (repeatable)', collect)
    .option('--currency <code>', 'local pricing: the currency of the estimate with Stripe off (usd)')
    .option('--unit-amount <minor units>', 'local pricing: the base price per billing period in minor units (4900: 49.00)')
    .option('--unit-price <metric=decimal>', 'local pricing: the price of one unit of a usage metric in minor units (api_calls=0.05) (repeatable)', collect);
}

export function plansCommands(program: Program, deps: Deps): void {
  const plans = program.command('plans').description('create, list, show, update, archive and delete plans');

  planFlags(plans.command('create').description('create a plan from flags, or from a JSON file (--file)'))
    .option('--code <code>', 'the plan’s code (lowercase letters, digits, _ and -)')
    .action(
      action(deps, async (ctx, o) => {
        const file = o.file ? ((await readJsonFile(ctx.io, o.file)) as Partial<CreateBody>) : {};
        const body = { ...file } as CreateBody;
        if (o.code !== undefined) body.code = o.code;
        if (o.name !== undefined) body.name = o.name;
        if (!body.code || !body.name) throw new UsageError('a plan needs --code and --name (or "code" and "name" in --file)');
        body.entitlements = entitlementsFrom(o, file.entitlements ?? { features: [], limits: {} });
        if (o.stripePrice !== undefined) body.stripe_price_id = o.stripePrice;
        if (o.meteredPrice !== undefined) body.metered_prices = { ...file.metered_prices, ...Object.fromEntries(pairs(o.meteredPrice, '--metered-price')) };
        if (hasPricingFlags(o)) body.local_pricing = localPricingFrom(o, file.local_pricing);
        const r = await ctx.client().createPlan(body);
        ctx.print(r, () => ctx.out(planDetails(r.plan)));
      }),
    );

  plans
    .command('list')
    .description('list plans by code')
    .option('--status <status>', 'active or archived')
    .action(
      action(deps, async (ctx, o) => {
        const r = await ctx.client().listPlans({ status: o.status as 'active' | 'archived' | undefined });
        ctx.print(r, () => (r.data.length ? ctx.out(planTable(r.data)) : ctx.say('no plans')));
      }),
    );

  plans
    .command('show <code>')
    .description('show one plan')
    .action(
      action(deps, async (ctx, _o, [code]) => {
        const r = await ctx.client().getPlan(code);
        ctx.print(r, () => ctx.out(planDetails(r.plan)));
      }),
    );

  planFlags(plans.command('update <code>').description('change a plan; entitlement flags apply on top of its current entitlements'))
    .option('--no-stripe-price', 'remove the Stripe price')
    .option('--no-local-pricing', 'remove the local pricing')
    .action(
      action(deps, async (ctx, o, [code]) => {
        const body = (o.file ? await readJsonFile(ctx.io, o.file) : {}) as UpdateBody;
        if (o.name !== undefined) body.name = o.name;
        if (hasEntitlementFlags(o)) body.entitlements = entitlementsFrom(o, body.entitlements ?? (await ctx.client().getPlan(code)).plan.entitlements);
        if (o.stripePrice === false) body.stripe_price_id = null;
        else if (typeof o.stripePrice === 'string') body.stripe_price_id = o.stripePrice;
        if (o.meteredPrice !== undefined) body.metered_prices = { ...body.metered_prices, ...Object.fromEntries(pairs(o.meteredPrice, '--metered-price')) };
        if (o.localPricing === false) {
          if (hasPricingFlags(o)) throw new UsageError('--no-local-pricing removes it: give no --currency, --unit-amount or --unit-price with it');
          body.local_pricing = null;
        } else if (hasPricingFlags(o)) {
          body.local_pricing = localPricingFrom(
            o,
            body.local_pricing !== undefined ? body.local_pricing : (await ctx.client().getPlan(code)).plan.local_pricing,
          );
        }
        if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give a flag or --file');
        const r = await ctx.client().updatePlan(code, body);
        ctx.print(r, () => ctx.out(planDetails(r.plan)));
      }),
    );

  plans
    .command('archive <code>')
    .description('archive a plan: no new subscriptions, existing ones keep it')
    .action(
      action(deps, async (ctx, _o, [code]) => {
        const r = await ctx.client().updatePlan(code, { status: 'archived' });
        ctx.print(r, () => ctx.say(`Archived plan ${r.plan.code}.`));
      }),
    );

  plans
    .command('delete <code>')
    .description('delete a plan no subscription uses (otherwise archive it)')
    .action(
      action(deps, async (ctx, _o, [code]) => {
        await ctx.client().deletePlan(code);
        // 204: the service sends no JSON, so --json prints nothing either; the exit code says it worked.
        if (!ctx.json) ctx.say(`Deleted plan ${code}.`);
      }),
    );
}

import { DEFAULT_THRESHOLDS, INSTANCE_LIMIT, type Entitlements, type OveragePolicy } from '../plans/plan-types';

/**
 * A customer's deal, as rules without I/O: its plan's entitlements with its overrides applied, and
 * what each metered limit means at a given usage. The licenses module (claims, the instance limit),
 * the usage routes (GET /api/usage) and the threshold watch all read these, so a deal means the same
 * everywhere. docs/LICENSES.md ("A customer's own deal") says it in words.
 */

/** A customer's overrides as given to PUT /api/customers/:id/entitlements (and stored so). */
export interface OverrideTerms {
  features: { add: string[]; remove: string[] };
  /** Replaces the plan's limit of that name (null: unlimited). Never `instances`: that is `instances` below. */
  limits: Record<string, number | null>;
  /** Absent: the plan's `limits.instances`; null: unlimited. */
  instances?: number | null;
  /** Per metered limit: replaces the plan's policy. */
  overage: Record<string, OveragePolicy>;
  /** Absent: the plan's thresholds. */
  thresholds?: number[];
}

/** Overrides as kept: the terms, why, and until when. */
export interface Overrides {
  customerId: string;
  terms: OverrideTerms;
  note: string | null;
  /** After this they stop applying, by themselves (null: until cleared). */
  expiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What a customer is entitled to now. `overage` names every metered limit (an allowance). */
export interface EffectiveEntitlements {
  features: string[];
  limits: Record<string, number | null>;
  overage: Record<string, OveragePolicy>;
  thresholds: number[];
}

export const NO_ENTITLEMENTS: Entitlements = { features: [], limits: {} };

/** Whether overrides apply at `nowMs`: they do until their expires_at (excluded). */
export const overridesApply = (o: Pick<Overrides, 'expiresAt'> | null, nowMs: number): boolean =>
  o !== null && (o.expiresAt === null || o.expiresAt.getTime() > nowMs);

/**
 * The plan's entitlements (none without a plan) with the overrides applied, when they apply:
 * features added then removed, limits replaced (null: unlimited), the instance limit replaced,
 * overage policies replaced per metric, thresholds replaced. A metered limit is a limit named after a
 * usage metric whose value is a number (an allowance per billing period); each has a policy
 * (`block` unless the plan or the overrides say otherwise).
 */
export function effectiveEntitlements(
  plan: Entitlements | null,
  overrides: Pick<Overrides, 'terms' | 'expiresAt'> | null,
  metrics: readonly string[],
  nowMs: number,
): EffectiveEntitlements {
  const base = plan ?? NO_ENTITLEMENTS;
  const o = overridesApply(overrides, nowMs) ? overrides!.terms : null;
  const features = new Set(base.features);
  const limits: Record<string, number | null> = { ...base.limits };
  const policies: Record<string, OveragePolicy> = { ...(base.overage ?? {}) };
  let thresholds = base.thresholds ?? [...DEFAULT_THRESHOLDS];
  if (o) {
    for (const f of o.features.add) features.add(f);
    for (const f of o.features.remove) features.delete(f);
    Object.assign(limits, o.limits);
    if (o.instances !== undefined) limits[INSTANCE_LIMIT] = o.instances;
    Object.assign(policies, o.overage);
    if (o.thresholds !== undefined) thresholds = o.thresholds;
  }
  const overage: Record<string, OveragePolicy> = {};
  for (const m of metrics) if (typeof limits[m] === 'number') overage[m] = policies[m] ?? 'block';
  return { features: [...features].sort(), limits, overage, thresholds: [...thresholds].sort((a, b) => a - b) };
}

/** The metered limits of effective entitlements: metric -> allowance. */
export function allowances(e: EffectiveEntitlements): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of Object.keys(e.overage)) out[m] = e.limits[m] as number;
  return out;
}

// ---- Quantities: decimal strings (at most 6 places), compared exactly as integers of millionths.

const SCALE = 1_000_000n;

/** "12.5" -> 12500000n millionths. Quantities are non-negative decimals with at most 6 places. */
export function micros(quantity: string): bigint {
  const [whole = '0', frac = ''] = quantity.trim().split('.');
  return BigInt(whole || '0') * SCALE + BigInt((frac + '000000').slice(0, 6) || '0');
}

/** 12500000n millionths -> "12.5". */
export function fromMicros(v: bigint): string {
  const whole = v / SCALE;
  const frac = (v % SCALE).toString().padStart(6, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole.toString();
}

/** An overage policy as a multiple of the allowance in percent: block 100, a tolerance of 1.25 125, allow null (no end). */
export function capPercent(policy: OveragePolicy): number | null {
  if (policy === 'allow') return null;
  if (policy === 'block') return 100;
  return Math.round(policy * 100);
}

/**
 * What a metered limit means now:
 * - `ok`: under the allowance, no threshold crossed;
 * - `warn`: a threshold crossed, not over the allowance;
 * - `over_tolerated`: over the allowance, and the policy allows more (`allow`, or within a tolerance);
 * - `blocked`: the policy allows nothing more (`block` at 100%, a tolerance at its multiple).
 */
export type MeteredState = 'ok' | 'warn' | 'over_tolerated' | 'blocked';

export interface MeteredStatus {
  allowance: number;
  /** The period's usage (a decimal string). */
  used: string;
  /** used / allowance in percent, two decimals, rounded down; null when the allowance is 0. */
  percent: number | null;
  thresholds: number[];
  thresholds_crossed: number[];
  overage: OveragePolicy;
  /** The quantity at which the policy stops the metered action (null: `allow`, never). */
  blocks_at: string | null;
  state: MeteredState;
}

/** Whether `used` has reached `percent`% of `allowance`. An allowance of 0 is reached by any use. */
export function reached(usedMicros: bigint, allowance: number, percent: number): boolean {
  if (allowance === 0) return usedMicros > 0n;
  return usedMicros * 100n >= BigInt(allowance) * SCALE * BigInt(percent);
}

export function meteredStatus(allowance: number, used: string, policy: OveragePolicy, thresholds: readonly number[]): MeteredStatus {
  const u = micros(used);
  const a = BigInt(allowance) * SCALE;
  const cap = capPercent(policy);
  const crossed = thresholds.filter((t) => reached(u, allowance, t));
  const blocked = cap !== null && (allowance === 0 ? true : u * 100n >= a * BigInt(cap));
  const over = u > a;
  const state: MeteredState = blocked ? 'blocked' : over ? 'over_tolerated' : crossed.length > 0 ? 'warn' : 'ok';
  return {
    allowance,
    used: fromMicros(u),
    percent: allowance === 0 ? null : Number((u * 10_000n) / a) / 100,
    thresholds: [...thresholds],
    thresholds_crossed: crossed,
    overage: policy,
    blocks_at: cap === null ? null : fromMicros((a * BigInt(cap)) / 100n),
    state,
  };
}

/** Every metered limit's status, from the period's usage per metric (absent: 0). */
export function meteredStatuses(e: EffectiveEntitlements, usedByMetric: Readonly<Record<string, string>>): Record<string, MeteredStatus> {
  const out: Record<string, MeteredStatus> = {};
  for (const [m, allowance] of Object.entries(allowances(e))) out[m] = meteredStatus(allowance, usedByMetric[m] ?? '0', e.overage[m]!, e.thresholds);
  return out;
}

// ---- Periods: an allowance is for the billing period; usage is counted by UTC day of occurrence.

export interface UsagePeriod {
  start: Date;
  end: Date;
}

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * The UTC days whose usage counts towards a period: from the day it starts up to the day it ends
 * (excluded), at least one. Consecutive periods share no day, so each day's usage belongs to exactly
 * one period, and a period's usage is read from the daily totals alone (never the raw events).
 */
export function periodDays(p: UsagePeriod): { fromDay: string; toDay: string } {
  const from = Math.floor(p.start.getTime() / DAY_MS) * DAY_MS;
  const to = Math.max(from + DAY_MS, Math.floor(p.end.getTime() / DAY_MS) * DAY_MS);
  return { fromDay: isoDay(from), toDay: isoDay(to) };
}

/** The calendar month (UTC) around `nowMs`: the period of a customer with no subscription period. */
export function calendarMonth(nowMs: number): UsagePeriod {
  const d = new Date(nowMs);
  return { start: new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)), end: new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)) };
}

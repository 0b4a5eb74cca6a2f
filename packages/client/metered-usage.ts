import type { LicenseClaims, MeteredState, OveragePolicy } from './license-claims';

/**
 * The offline helper's arithmetic: a metered limit of the license (its `metered` claim, signed as of
 * issue) with what this instance has reported since, and whether the policy allows n more. Quantities
 * are exact decimals (at most 6 places), summed as integers of millionths (BigInt), as the service
 * sums them. Nothing here does I/O: the client feeds it its ledger and queue (billing-client.ts).
 */

const SCALE = 1_000_000n;
const DECIMAL = /^(\d{1,20})(?:\.(\d{1,6}))?$/;

/** A quantity in millionths: a decimal string ("12.5") or a number (at most 6 places); null when it is neither. */
export function toMicros(q: string | number): bigint | null {
  let text: string;
  if (typeof q === 'number') {
    if (!Number.isFinite(q) || q < 0) return null;
    text = Number.isInteger(q) ? BigInt(q).toString() : q.toFixed(6);
  } else if (typeof q === 'string') {
    text = q.trim();
  } else {
    return null;
  }
  const m = DECIMAL.exec(text);
  if (!m) return null;
  return BigInt(m[1]!) * SCALE + BigInt((m[2] ?? '').padEnd(6, '0'));
}

/** Millionths as a decimal string: 12500000n -> "12.5". */
export function fromMicros(v: bigint): string {
  const frac = (v % SCALE).toString().padStart(6, '0').replace(/0+$/, '');
  return frac ? `${v / SCALE}.${frac}` : (v / SCALE).toString();
}

/** Where the policy stops, in percent of the allowance: block 100, a tolerance of 1.25 125, allow null (never). */
function capPercent(policy: OveragePolicy): bigint | null {
  if (policy === 'allow') return null;
  if (policy === 'block') return 100n;
  return BigInt(Math.round(policy * 100));
}

/** What a metered limit means at `used` (millionths): the service's rule (entitlement-rules.ts), applied here. */
export function meteredState(allowance: number, used: bigint, policy: OveragePolicy, thresholds: readonly number[]): MeteredState {
  const a = BigInt(allowance) * SCALE;
  const cap = capPercent(policy);
  const reached = (percent: number) => (allowance === 0 ? used > 0n : used * 100n >= a * BigInt(percent));
  if (cap !== null && (allowance === 0 || used * 100n >= a * cap)) return 'blocked';
  if (used > a) return 'over_tolerated';
  return thresholds.some(reached) ? 'warn' : 'ok';
}

/** A metered limit with this instance's own reports added: what `license.usage(metric)` answers. */
export interface MeteredUsage {
  /** The allowance for the period. */
  allowance: number;
  /** The signed figure counted: the period's usage when the license was issued ("0" once that period has ended). */
  used_signed: string;
  /** What this instance reported since (acknowledged by the service, or still queued). */
  used_local: string;
  /** used_signed + used_local. */
  used: string;
  state: MeteredState;
  /** Where the policy stops the metered action (null: `allow`, never). */
  blocks_at: string | null;
  overage: OveragePolicy;
}

/** Whether the license's usage period has ended at `nowMs` (its signed figures are then of the old period). */
export function periodEnded(claims: Pick<LicenseClaims, 'usage'>, nowMs: number): boolean {
  return claims.usage !== null && nowMs >= claims.usage.period_end * 1000;
}

/** How far after `iat` a kept `requestedAt` is believed (the verifier's default clock tolerance). */
const REQUESTED_AT_SLACK_MS = 60_000;

/**
 * From when (ms, included) this instance's acknowledged reports count on top of the signed figures:
 * after it asked for the license (`requestedAtMs`, when it fetched it itself: everything acknowledged
 * by then is in the signed figure, whatever this clock says of the service's), else from the
 * license's `iat`; once the usage period has ended, from its end (the signed figures are of the old
 * period and are not counted). `requestedAtMs` is kept unsigned beside the license, so it is believed
 * up to a minute after `iat` only.
 */
export function localSince(claims: Pick<LicenseClaims, 'usage' | 'iat'>, nowMs: number, requestedAtMs: number | null = null): number {
  if (periodEnded(claims, nowMs)) return claims.usage!.period_end * 1000;
  return requestedAtMs === null ? claims.iat * 1000 : Math.min(requestedAtMs + 1, claims.iat * 1000 + REQUESTED_AT_SLACK_MS);
}

/**
 * The metric's figures with `localMicros` (this instance's reports since localSince(...), in
 * millionths) added; null when the license does not meter it (no allowance, or unlimited).
 */
export function meteredUsage(claims: Pick<LicenseClaims, 'metered' | 'usage'>, metric: string, localMicros: bigint, nowMs: number): MeteredUsage | null {
  const entry = Object.hasOwn(claims.metered, metric) ? claims.metered[metric] : undefined;
  if (!entry) return null;
  const signed = periodEnded(claims, nowMs) ? 0n : (toMicros(entry.used) ?? 0n);
  const used = signed + localMicros;
  const cap = capPercent(entry.overage);
  return {
    allowance: entry.allowance,
    used_signed: fromMicros(signed),
    used_local: fromMicros(localMicros),
    used: fromMicros(used),
    state: meteredState(entry.allowance, used, entry.overage, entry.thresholds),
    blocks_at: cap === null ? null : fromMicros((BigInt(entry.allowance) * SCALE * cap) / 100n),
    overage: entry.overage,
  };
}

/**
 * Whether the policy allows `n` more: `allow` always; `block` while used + n <= allowance; a tolerance
 * while used + n <= allowance × tolerance. A metric the license does not meter (null) is allowed.
 */
export function allowsMore(usage: MeteredUsage | null, n: number | string = 1): boolean {
  const more = toMicros(n);
  if (more === null) throw new TypeError('n must be a non-negative number or decimal string (at most 6 decimal places)');
  if (usage === null) return true;
  const cap = capPercent(usage.overage);
  if (cap === null) return true;
  return (toMicros(usage.used)! + more) * 100n <= BigInt(usage.allowance) * SCALE * cap;
}

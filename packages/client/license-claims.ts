import type { components } from './api-types';
import { LicenseError } from './license-errors';

/**
 * The payload the server signs, as the service's OpenAPI document describes it (the `LicenseClaims`
 * component, generated into api-types.ts; docs/LICENSE-VERIFICATION.md explains each field):
 * NumericDate fields are seconds, a limit of null is unlimited. A change to the server's claims
 * regenerates this type, and the check below stops compiling until it follows.
 */
export type LicenseClaims = components['schemas']['LicenseClaims'];
export type LicenseStatus = LicenseClaims['status'];
/** One metered limit as of issue: allowance, used, thresholds, overage policy, state (docs/LICENSE-VERIFICATION.md). */
export type MeteredClaim = LicenseClaims['metered'][string];
export type MeteredState = MeteredClaim['state'];
export type OveragePolicy = MeteredClaim['overage'];

const STATUSES: readonly LicenseStatus[] = ['active', 'trialing', 'grace', 'expired'];
const METERED_STATES: readonly MeteredState[] = ['ok', 'warn', 'over_tolerated', 'blocked'];

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** A quantity as the service writes one: a non-negative decimal, at most 6 places. */
export const isDecimal = (v: unknown): v is string => typeof v === 'string' && /^\d{1,20}(\.\d{1,6})?$/.test(v);
const isPercents = (v: unknown): v is number[] => Array.isArray(v) && v.every(isCount);
const isPolicy = (v: unknown): v is OveragePolicy => v === 'block' || v === 'allow' || (typeof v === 'number' && Number.isFinite(v) && v >= 1);

function bad(field: string): never {
  throw new LicenseError('MALFORMED', `The license payload is not in the license format (${field}).`);
}

function record<T>(v: unknown, field: string, ok: (x: unknown) => x is T): Record<string, T> {
  if (!isObj(v)) bad(field);
  const out: Record<string, T> = Object.create(null) as Record<string, T>;
  for (const [k, x] of Object.entries(v)) {
    if (!ok(x)) bad(`${field}.${k}`);
    out[k] = x;
  }
  return out;
}

function meteredClaim(v: unknown, field: string): MeteredClaim {
  if (!isObj(v)) bad(field);
  if (!isCount(v.allowance)) bad(`${field}.allowance`);
  if (!isDecimal(v.used)) bad(`${field}.used`);
  if (v.percent !== null && !(typeof v.percent === 'number' && Number.isFinite(v.percent) && v.percent >= 0)) bad(`${field}.percent`);
  if (!isPercents(v.thresholds)) bad(`${field}.thresholds`);
  if (!isPercents(v.thresholds_crossed)) bad(`${field}.thresholds_crossed`);
  if (!isPolicy(v.overage)) bad(`${field}.overage`);
  if (v.blocks_at !== null && !isDecimal(v.blocks_at)) bad(`${field}.blocks_at`);
  if (!METERED_STATES.includes(v.state as MeteredState)) bad(`${field}.state`);
  return {
    allowance: v.allowance,
    used: v.used,
    percent: v.percent,
    thresholds: [...v.thresholds],
    thresholds_crossed: [...v.thresholds_crossed],
    overage: v.overage,
    blocks_at: v.blocks_at,
    state: v.state as MeteredState,
  };
}

/** `metered`: absent in licenses signed before it (then {}). */
function meteredClaims(v: unknown): LicenseClaims['metered'] {
  const out: LicenseClaims['metered'] = Object.create(null) as LicenseClaims['metered'];
  if (v === undefined) return out;
  if (!isObj(v)) bad('metered');
  for (const [k, x] of Object.entries(v)) out[k] = meteredClaim(x, `metered.${k}`);
  return out;
}

/**
 * Checks the shape of a payload whose signature has already been verified. The server is trusted to
 * sign the right values, but a field the instance acts on must never be read as the wrong type.
 */
export function parseLicenseClaims(payload: unknown): LicenseClaims {
  if (!isObj(payload)) bad('payload');
  const p = payload;
  for (const f of ['iss', 'sub', 'jti'] as const) if (!isText(p[f])) bad(f);
  for (const f of ['iat', 'nbf', 'exp'] as const) if (!isTime(p[f])) bad(f);
  if (!STATUSES.includes(p.status as LicenseStatus)) bad('status');
  if (!isObj(p.plan) || typeof p.plan.code !== 'string' || typeof p.plan.name !== 'string') bad('plan');

  const e = p.entitlements;
  if (!isObj(e) || !Array.isArray(e.features) || !e.features.every((f) => typeof f === 'string')) bad('entitlements.features');
  const limits = record(e.limits, 'entitlements.limits', (x): x is number | null => x === null || (typeof x === 'number' && Number.isFinite(x)));

  let usage: LicenseClaims['usage'] = null;
  if (p.usage !== null && p.usage !== undefined) {
    const u = p.usage;
    if (!isObj(u) || !isTime(u.period_start) || !isTime(u.period_end)) bad('usage');
    usage = {
      period_start: u.period_start,
      period_end: u.period_end,
      quantities: record(u.quantities, 'usage.quantities', (x): x is string => typeof x === 'string'),
    };
  }

  let subscription: LicenseClaims['subscription'] = null;
  if (p.subscription !== null && p.subscription !== undefined) {
    const s = p.subscription;
    if (!isObj(s) || typeof s.id !== 'string' || typeof s.status !== 'string' || typeof s.cancel_at_period_end !== 'boolean') bad('subscription');
    if (s.current_period_end !== null && s.current_period_end !== undefined && !isTime(s.current_period_end)) bad('subscription.current_period_end');
    subscription = { id: s.id, status: s.status, current_period_end: s.current_period_end ?? null, cancel_at_period_end: s.cancel_at_period_end };
  }

  for (const f of ['valid_until', 'grace_until'] as const) if (p[f] !== null && p[f] !== undefined && !isTime(p[f])) bad(f);
  if (p.instance !== undefined && p.instance !== null && !isText(p.instance)) bad('instance');

  return {
    iss: p.iss as string,
    sub: p.sub as string,
    jti: p.jti as string,
    iat: p.iat as number,
    nbf: p.nbf as number,
    exp: p.exp as number,
    plan: { code: p.plan.code, name: p.plan.name },
    // Fields the format no longer has (a plan's `seats`, in licenses signed before it was removed) are left out.
    entitlements: { features: [...e.features], limits },
    usage,
    metered: meteredClaims(p.metered),
    status: p.status as LicenseStatus,
    subscription,
    valid_until: (p.valid_until as number | null | undefined) ?? null,
    grace_until: (p.grace_until as number | null | undefined) ?? null,
    ...(typeof p.instance === 'string' ? { instance: p.instance } : {}),
  };
}

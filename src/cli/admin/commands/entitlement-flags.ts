import { UsageError } from '../failure';

/**
 * The flags that describe entitlements, shared by `plans create|update` and `customers entitlements
 * set`: each turns its text into the API's value and leaves the rules (ranges, names, metrics) to the
 * service, which names the field it refuses.
 */

/** "name=value" pairs of a repeatable flag. */
export function pairs(values: string[] | undefined, flag: string): [string, string][] {
  return (values ?? []).map((v) => {
    const i = v.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} takes name=value, not ${JSON.stringify(v)}`);
    return [v.slice(0, i), v.slice(i + 1)];
  });
}

/** A whole number, or "unlimited" (null). */
export function countOrUnlimited(value: string, flag: string): number | null {
  if (value === 'unlimited') return null;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} takes a whole number or "unlimited", not ${JSON.stringify(value)}`);
  return Number(value);
}

/** --limit name=N|unlimited, repeated. */
export function limitsOf(values: string[] | undefined): Record<string, number | null> {
  return Object.fromEntries(pairs(values, '--limit').map(([k, v]) => [k, countOrUnlimited(v, `--limit ${k}=`)]));
}

export type Overage = 'block' | 'allow' | number;

/** --overage metric=block|allow|1.25, repeated. */
export function overageOf(values: string[] | undefined): Record<string, Overage> {
  return Object.fromEntries(
    pairs(values, '--overage').map(([k, v]): [string, Overage] => {
      if (v === 'block' || v === 'allow') return [k, v];
      if (!/^\d+(\.\d+)?$/.test(v))
        throw new UsageError(`--overage ${k}= takes block, allow or a tolerance (a multiple of the allowance: 1.25), not ${JSON.stringify(v)}`);
      return [k, Number(v)];
    }),
  );
}

/** --threshold N, repeated: percentages of each allowance. */
export function thresholdsOf(values: string[] | undefined): number[] | undefined {
  return values?.map((v) => {
    if (!/^\d+$/.test(v)) throw new UsageError(`--threshold takes a whole percentage (80), not ${JSON.stringify(v)}`);
    return Number(v);
  });
}

/** limits as one line: name=value, unlimited for null. */
export const limitsText = (l: Record<string, number | null>) =>
  Object.entries(l)
    .map(([k, v]) => `${k}=${v ?? 'unlimited'}`)
    .join(', ');

export const overageText = (o: Record<string, Overage> | undefined) =>
  Object.entries(o ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

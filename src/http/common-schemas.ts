import { z } from 'zod';
import { UUID_RE } from '../lib/ids';

export const uuid = z.string().regex(UUID_RE, 'must be a UUID');

/** Free text a person typed: trimmed, bounded, no control characters. */
export const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

export const email = z.string().trim().max(254, 'must be at most 254 characters').pipe(z.email('must be a valid email address'));

export const idParams = z.object({ id: uuid });

export const isoDate = z.iso.datetime({ offset: true }).transform((s) => new Date(s));

export const iso = (d: Date | null) => (d ? d.toISOString() : null);

import { randomUUID } from 'node:crypto';
import { BillingApiError } from './api-error';
import type { UsageBatchAnswer, UsageEvent, UsageEventBody, UsageReceipt } from './client-types';
import { call, type HttpSettings } from './http';

/**
 * The event exactly as it will be sent, every time: its idempotency key is fixed here, once, before
 * the first attempt (and, with a queue, before it is written to disk), so no retry or resend can
 * count it twice.
 */
export function withKey(event: UsageEvent, stampTime: boolean): UsageEventBody {
  const { idempotency_key, occurred_at, ...rest } = event;
  const at = occurred_at instanceof Date ? occurred_at.toISOString() : (occurred_at ?? (stampTime ? new Date().toISOString() : undefined));
  return { ...rest, ...(at !== undefined ? { occurred_at: at } : {}), idempotency_key: idempotency_key ?? randomUUID() };
}

/** One POST /api/usage of a batch (all or nothing), retried when safe with the same keys. */
export async function postBatch(http: HttpSettings, events: UsageEventBody[], signal?: AbortSignal): Promise<UsageReceipt[]> {
  const res = await call<UsageBatchAnswer>(http, 'POST', '/api/usage', { body: { events }, idempotent: true, signal });
  return res.body.events.map((e) => ({ id: e.id, idempotencyKey: e.idempotency_key, replayed: e.replayed, queued: false as const }));
}

/**
 * The service will never take this batch as it is, however often it is sent: a validation failure,
 * a key already used with another body (409), a body too large or malformed. 401/403 are not here:
 * they are the credential's problem, not the events'.
 */
export function isRefusal(err: unknown): err is BillingApiError {
  return err instanceof BillingApiError && (err.status === 422 || err.status === 409 || err.status === 413 || err.status === 400);
}

/** The items a 422 names by index (the service lists each bad event of a batch), or null. */
export function refusedIndexes(err: BillingApiError, size: number): Set<number> | null {
  if (err.status !== 422 || !Array.isArray(err.details)) return null;
  const found = new Set<number>();
  for (const d of err.details as { index?: unknown }[]) {
    if (typeof d?.index === 'number' && Number.isInteger(d.index) && d.index >= 0 && d.index < size) found.add(d.index);
  }
  return found.size > 0 ? found : null;
}

/**
 * Sends a batch; when the service refuses it for some of its events (batches are all or nothing),
 * gives the refused ones to `refused` and sends the rest: by the indexes a 422 names, else by
 * halves, down to single events (a 409 names no event). Errors other than a refusal propagate, with
 * nothing acknowledged: the caller resends the same events.
 */
export async function deliver(
  send: (events: UsageEventBody[]) => Promise<UsageReceipt[]>,
  events: UsageEventBody[],
  refused: (event: UsageEventBody, err: BillingApiError) => Promise<void>,
): Promise<UsageReceipt[]> {
  if (events.length === 0) return [];
  try {
    return await send(events);
  } catch (err) {
    if (!isRefusal(err)) throw err;
    if (events.length === 1) {
      await refused(events[0]!, err);
      return [];
    }
    const bad = refusedIndexes(err, events.length);
    if (bad) {
      for (const i of bad) await refused(events[i]!, err);
      return deliver(
        send,
        events.filter((_, i) => !bad.has(i)),
        refused,
      );
    }
    const half = Math.ceil(events.length / 2);
    return [...(await deliver(send, events.slice(0, half), refused)), ...(await deliver(send, events.slice(half), refused))];
  }
}

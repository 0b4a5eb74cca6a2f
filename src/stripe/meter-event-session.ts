/**
 * The meter event stream's authentication: a session token from `v2.billing.meterEventSession.create()`,
 * valid about 15 minutes. One holder per Stripe client, so every worker of an instance shares one
 * token; it is renewed a margin before it expires, and by one request however many callers ask at
 * once. A call Stripe refuses as `temporary_session_expired` (clocks disagree, or Stripe ended the
 * session early) drops that token, and the caller tries once more with a fresh one.
 */
export interface SessionToken {
  token: string;
  expiresAt: number;
}

export interface MeterEventSessionDeps {
  create: () => Promise<SessionToken>;
  now?: () => number;
  /** Renew this long before expires_at. */
  renewBeforeMs?: number;
}

export function createMeterEventSessionHolder(deps: MeterEventSessionDeps) {
  const now = deps.now ?? Date.now;
  const margin = deps.renewBeforeMs ?? 60_000;
  let current: SessionToken | null = null;
  let creating: Promise<SessionToken> | null = null;
  let created = 0;

  return {
    async token(): Promise<string> {
      if (current && current.expiresAt - margin > now()) return current.token;
      creating ??= deps
        .create()
        .then((s) => {
          current = s;
          created++;
          return s;
        })
        .finally(() => {
          creating = null;
        });
      return (await creating).token;
    },
    /** Forgets `token` if it is still the current one (another caller may have renewed it already). */
    expire(token: string): void {
      if (current?.token === token) current = null;
    },
    /** Sessions created so far (metrics, tests). */
    created: () => created,
  };
}

export type MeterEventSessionHolder = ReturnType<typeof createMeterEventSessionHolder>;

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BillingApiError, BillingNetworkError } from './api-error';
import { InstanceLimitReachedError, OfflineModeError, UsageReportError } from './client-errors';
import type {
  ActivationAnswer,
  ActivationRequest,
  Invoice,
  InvoicesPage,
  InvoicesQuery,
  LicenseAnswer,
  Me,
  PortalSession,
  QueuedReceipt,
  Subscriptions,
  UsageEvent,
  UsageEventBody,
  UsageReceipt,
  UpcomingInvoice,
  UsageBundleAnswer,
  UsageTotals,
} from './client-types';
import { call, defaultHttpSettings, type HttpSettings } from './http';
import { trustAnchor, type Jwks, type JwksSource } from './jwks-source';
import { LicenseCache } from './license-cache';
import { fileLicenseStore, memoryLicenseStore, type LicenseStore } from './license-store';
import { createLicenseVerifier, type LicenseVerifier, type VerifiedLicense } from './license-verifier';
import { isLicenseError } from './license-errors';
import { loadOrCreateInstanceKey, type InstanceKey, type InstanceKeyJwk } from './instance-key';
import { verifyReceipt } from './receipt-verifier';
import { ReceiptError } from './receipt-errors';
import { readAnswer } from './receipt-file';
import { UsageBundles, type ExportSummary } from './usage-bundles';
import { allowsMore, localSince, meteredUsage, type MeteredUsage } from './metered-usage';
import { UsageFlusher, type FlushResult } from './usage-flusher';
import { privateDirCheck, readPrivate, writeFileAtomic } from './private-fs';
import { UsagePacer } from './usage-pacer';
import { UsageLedger } from './usage-ledger';
import { UsageQueue, type DeadLetter } from './usage-queue';
import { postBatch, withKey } from './usage-sender';

export interface ClientLicenseOptions {
  /** This instance's fingerprint: sent with getLicense and activate; a license bound to another, or to none, is refused. */
  fingerprint?: string;
  /** Where the last good license (license.json), the replay mark (license-mark.json) and the root-signed key set (license-keys.jws) are kept. Without it: in memory only. */
  dir?: string;
  /**
   * The license public keys built into your software: a JWKS object, or the path of a JWKS file
   * shipped with it (never a file the site can replace). This, or trustedRoots, or both.
   */
  trustedKeys?: Jwks | string;
  /** The root public keys built into your software (object or shipped file): keys from a key set one of them signed count too. */
  trustedRoots?: Jwks | string;
  /** Where the root-signed key set is fetched (with trustedRoots). Default `<baseUrl>/.well-known/license-keys`: what it serves counts only if a root signed it. */
  keySetUrl?: string;
  /** A root-signed key set in hand (an air-gapped site's, carried in): checked against trustedRoots like a fetched one. */
  keySet?: string;
  /** Allow an http:// keySetUrl to a host other than loopback. */
  allowInsecureKeySet?: boolean;
  /** Expected `iss`. */
  issuer?: string;
  /** Expected `sub`. Default: the customer id in the API key (`cust_<id>_…`); another customer's license is refused. */
  customerId?: string;
  /** Refuse a license bound to no instance. Default: true when a fingerprint is known. */
  requireBinding?: boolean;
  clockToleranceSeconds?: number;
}

export interface BillingClientOptions {
  /** Default: BILLING_API_URL. Not needed with `offline: true`. */
  baseUrl?: string;
  /** The customer's API key (sent as X-API-Key). Default: BILLING_API_KEY. Not needed with `offline: true` (then only its customer id is read). */
  apiKey?: string;
  /**
   * An instance that never reaches the service (air-gapped): baseUrl and apiKey may be left out, no
   * request is ever made (a call that needs the service is OfflineModeError), the queue is not flushed:
   * its events leave in usage bundles (exportUsage) and are acknowledged by receipts (importReceipt).
   * getLicense answers the kept license. The customer id comes from license.customerId (or the API
   * key, when one is given); the fingerprint from license.fingerprint.
   */
  offline?: boolean;
  /** Per attempt, ms. Default 10 s. */
  timeoutMs?: number;
  /** Retries of a request that is safe to repeat. Default 5. */
  maxRetries?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Events per POST /api/usage: the service's USAGE_MAX_BATCH. Default 1000 (the service's default). */
  maxBatch?: number;
  /** Opt-in durable queue: reportUsage writes here first, a background flusher sends. */
  queueDir?: string;
  /** Default 100,000 events and 64 MiB waiting. */
  queueMaxEvents?: number;
  queueMaxBytes?: number;
  /**
   * How often the background flusher sends what the queue holds. Default 60 s: with the service's
   * default limit of 60 requests an hour (RATE_LIMIT_USAGE=60/1h) and batches of 1000, at least 60,000
   * events an hour. A full batch is sent at once, and the flusher also paces itself by the service's
   * Retry-After and RateLimit headers, whatever this is.
   */
  flushIntervalMs?: number;
  /**
   * Told of each failed background round (the events stay queued), and of a write to the usage ledger
   * that failed (the acknowledgement still counts in memory until the instance restarts).
   */
  onFlushError?: (err: unknown) => void;
  license?: ClientLicenseOptions;
  fetch?: typeof fetch;
  userAgent?: string;
}

interface Licensing {
  keys: JwksSource;
  store: LicenseStore;
  byFingerprint: Map<string, { cache: LicenseCache | null; verifier: LicenseVerifier }>;
}

/**
 * The offline helper of a license (docs/LICENSE-VERIFICATION.md): its signed metered figures with what
 * this instance has reported since it was issued (the usage ledger: what the service acknowledged;
 * and the queue: what waits to be sent). Never calls the service.
 */
export interface LicenseMetering {
  /**
   * Whether the policy allows `n` more of `metric` (default 1): a metric the license does not meter
   * (no allowance, or unlimited) is allowed; `block` while used + n <= allowance; a tolerance while
   * used + n <= allowance × tolerance; `allow` always.
   */
  allows(metric: string, n?: number | string): Promise<boolean>;
  /** The metric's figures with this instance's own reports added; null when the license does not meter it. */
  usage(metric: string): Promise<MeteredUsage | null>;
}

/** A license as getLicense answers it: verified, whether it came from the service or the kept copy, and its offline helper. */
export type ClientLicense = VerifiedLicense & LicenseMetering & { offline: boolean };

/** What activationRequest answers: carried to an admin, who activates the instance offline with `body`. */
export interface ActivationRequestFile {
  format: 'activation-request/1';
  /** The :id of POST /api/customers/:id/licenses; null when the client does not know it. */
  customer_id: string | null;
  /** To compare with the activation's instance_key_thumbprint once it is made. */
  instance_key_thumbprint: string;
  body: { fingerprint: string; instance_key: InstanceKeyJwk; name?: string; hostname?: string };
}

/** What importReceipt did. */
export interface ReceiptImport {
  bundleId: string;
  seq: number;
  /** Events taken off the queue by this import (those acknowledged online meanwhile had left already). */
  acknowledged: number;
  /** Refused events moved to the dead letters by this import. */
  deadLettered: number;
  /** Events the receipt lists as refused. */
  rejected: number;
  /** Bundles of this instance the service never received (seqs below the highest it has): carry those files too. */
  missingSeq: number[];
  /** The service found this bundle's `previous` not the digest of the bundle it has under seq - 1. */
  previousMismatch: boolean;
  /** As the receipt says: events newly stored, stored already, and of the applied, late (billed by a true-up). */
  applied: number;
  duplicates: number;
  late: number;
  /** The fresh license, verified and kept; null when there was none or it was refused (licenseError). */
  license: ClientLicense | null;
  /** Why there is no new license: the service could not issue one (`service`), or it did not verify here (`client`, a LicenseError code). */
  licenseError: { code: string; message: string; source: 'service' | 'client' } | null;
}

/** 60 requests an hour (the service's default RATE_LIMIT_USAGE) apart: one a minute. */
export const DEFAULT_FLUSH_INTERVAL_MS = 60_000;

/** A key set given in code, or read from a file shipped with the software. */
function jwksFrom(given: Jwks | string | undefined, name: string): Jwks | undefined {
  if (typeof given !== 'string') return given;
  try {
    return JSON.parse(readFileSync(given, 'utf8')) as Jwks;
  } catch (err) {
    throw new TypeError(`${name}: cannot read the key file ${given} (${(err as Error).message})`, { cause: err });
  }
}

const unreachable = (err: unknown) =>
  err instanceof BillingNetworkError || err instanceof OfflineModeError || (err instanceof BillingApiError && err.retryable);

/**
 * What a customer instance embeds: usage reporting (idempotency keys always, batches, safe retries,
 * an optional on-disk queue) and its license (fetched, verified offline, kept for when the service
 * is out of reach).
 */
export class BillingClient {
  /** '' for an offline client without one. */
  readonly baseUrl: string;
  private readonly settings: HttpSettings;
  private readonly offline: boolean;
  private readonly queueDir: string | undefined;
  private instanceKeyOpen: Promise<InstanceKey> | null = null;
  private bundlesOpen: Promise<UsageBundles> | null = null;
  private readonly maxBatch: number;
  private readonly queue: Promise<{ queue: UsageQueue; flusher: UsageFlusher; ledger: UsageLedger }> | null = null;
  /** Without a queue: the usage ledger in license.dir, or in memory (see ledger()). */
  private ledgerOpen: Promise<UsageLedger> | null = null;
  private readonly onError: (err: unknown) => void;
  private readonly licenseOptions: ClientLicenseOptions;
  private licensing: Promise<Licensing> | null = null;
  /** The license folder's check, started as the client is built (see licensing()). */
  private readonly licenseFolder: (() => Promise<void>) | null = null;
  /** The customer id in the API key: licenses are for it unless license.customerId says otherwise. */
  private readonly keyCustomerId: string | undefined;
  private lastLicense: VerifiedLicense | null = null;
  /** When the last license (without license.dir) was asked for. */
  private lastRequestedAt: number | null = null;
  /**
   * When a license was last asked for: acknowledgements recorded from then on are stamped after it,
   * so each is on one side of it (in the license's figures, or added to them), never both or neither.
   */
  private fenceAt = 0;
  private closed = false;

  constructor(options: BillingClientOptions = {}) {
    const baseUrl = options.baseUrl ?? process.env.BILLING_API_URL;
    const apiKey = options.apiKey ?? process.env.BILLING_API_KEY;
    this.offline = options.offline === true;
    // Only a client that says it never calls the service may go without them: a missing variable must not silently make an instance offline.
    if (!this.offline) {
      if (!baseUrl) throw new TypeError('baseUrl is required (or BILLING_API_URL); an air-gapped instance takes offline: true');
      if (!apiKey) throw new TypeError('apiKey is required (or BILLING_API_KEY); an air-gapped instance takes offline: true');
    }
    if (baseUrl) new URL(baseUrl);
    this.baseUrl = baseUrl ?? '';
    this.queueDir = options.queueDir;
    this.maxBatch = options.maxBatch ?? 1000;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new TypeError('maxBatch must be an integer >= 1');
    this.settings = {
      baseUrl: this.baseUrl,
      headers: apiKey ? { 'x-api-key': apiKey } : {},
      timeoutMs: options.timeoutMs ?? defaultHttpSettings.timeoutMs,
      maxRetries: options.maxRetries ?? defaultHttpSettings.maxRetries,
      backoffBaseMs: options.backoffBaseMs ?? defaultHttpSettings.backoffBaseMs,
      backoffMaxMs: options.backoffMaxMs ?? defaultHttpSettings.backoffMaxMs,
      fetch: options.fetch,
      userAgent: options.userAgent ?? '@billing/client',
    };
    this.licenseOptions = options.license ?? {};
    this.onError = (err) => options.onFlushError?.(err);
    this.keyCustomerId = apiKey ? /^cust_([0-9a-fA-F-]{36})_/.exec(apiKey)?.[1] : undefined;
    for (const gone of ['jwks', 'jwksUrl', 'allowInsecureJwks']) {
      if ((this.licenseOptions as Record<string, unknown>)[gone] !== undefined) {
        throw new TypeError(
          `license.${gone} is no longer accepted: licenses verify only against keys built into your software. ` +
            'Give license.trustedKeys or license.trustedRoots (see docs/LICENSE-VERIFICATION.md)',
        );
      }
    }
    // Checked now, reported by the first getLicense or verifyLicense (as the queue folder is by the first queue call).
    if (this.licenseOptions.dir !== undefined) this.licenseFolder = privateDirCheck(this.licenseOptions.dir, 'license');
    if (options.queueDir !== undefined) {
      const pacer = new UsagePacer();
      const usage = { ...this.settings, observe: (status: number, headers: Headers) => pacer.observe(status, headers) };
      const once = { ...usage, maxRetries: 0 };
      this.queue = UsageQueue.open(options.queueDir, {
        ...(options.queueMaxEvents !== undefined ? { maxEvents: options.queueMaxEvents } : {}),
        ...(options.queueMaxBytes !== undefined ? { maxBytes: options.queueMaxBytes } : {}),
      }).then(async (queue) => {
        // What the service acknowledged, beside the queue it came from (usage-ledger.ts).
        const ledger = await UsageLedger.open(queue.dir, { onError: this.onError }).catch(async (err: unknown) => {
          await queue.close();
          throw err;
        });
        const flusher = new UsageFlusher({
          queue,
          send: (events) => postBatch(usage, events),
          sendOnce: (events) => postBatch(once, events),
          maxBatch: this.maxBatch,
          intervalMs: options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS,
          pacer,
          backoffBaseMs: this.settings.backoffBaseMs,
          backoffMaxMs: this.settings.backoffMaxMs,
          onError: options.onFlushError,
          acknowledged: (events, receipts) => ledger.prepare(this.ackTime(), events, receipts),
        });
        // Offline, the events leave in usage bundles: nothing is ever sent.
        if (!this.closed && !this.offline) flusher.start();
        return { queue, flusher, ledger };
      });
      // Seen by the first call that needs the queue (a QueueLockedError, say), not as an unhandled rejection.
      this.queue.catch(() => undefined);
    }
  }

  /**
   * Reports usage. Each event gets an idempotency key unless it has one. Without a queue: sent in
   * batches of maxBatch, retried (network, 429, 5xx) with the same keys; resolves with what the service
   * said of each event. With a queue: resolves once the events are on disk (even while the service is
   * down), with their keys; the flusher sends them.
   */
  reportUsage(event: UsageEvent): Promise<UsageReceipt | QueuedReceipt>;
  reportUsage(events: UsageEvent[]): Promise<(UsageReceipt | QueuedReceipt)[]>;
  async reportUsage(input: UsageEvent | UsageEvent[]): Promise<UsageReceipt | QueuedReceipt | (UsageReceipt | QueuedReceipt)[]> {
    const many = Array.isArray(input);
    const list = many ? input : [input];
    if (this.closed) throw new Error('the client is closed');
    let out: (UsageReceipt | QueuedReceipt)[];
    if (this.queue) {
      // occurred_at is stamped now: the event may be sent hours later.
      const events = list.map((e) => withKey(e, true));
      const { queue, flusher } = await this.queue;
      await queue.append(events);
      flusher.nudge();
      out = events.map((e) => ({ id: null, idempotencyKey: e.idempotency_key, replayed: null, queued: true as const }));
    } else {
      if (this.offline) throw new OfflineModeError('reportUsage without a queue');
      out = await this.sendNow(list.map((e) => withKey(e, false)));
    }
    return many ? out : out[0]!;
  }

  /** Sends everything queued; resolves when the service has it. Without a queue there is nothing to do. */
  async flush(): Promise<FlushResult> {
    if (this.offline) throw new OfflineModeError('flush');
    if (!this.queue) return { sent: 0, replayed: 0, deadLettered: 0, receipts: [] };
    return (await this.queue).flusher.flush();
  }

  /** Events waiting on disk. */
  async queued(): Promise<{ events: number; bytes: number }> {
    if (!this.queue) return { events: 0, bytes: 0 };
    const { queue } = await this.queue;
    return { events: queue.length, bytes: queue.bytes };
  }

  /** The events the service refused for good (dead-letter.jsonl in the queue directory), oldest first. */
  async deadLetters(): Promise<DeadLetter[]> {
    if (!this.queue) return [];
    const { queue } = await this.queue;
    const text = ((await readPrivate(queue.deadLetterFile)) ?? Buffer.alloc(0)).toString('utf8');
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as DeadLetter];
        } catch {
          return [];
        }
      });
  }

  /** Stops the flusher (waiting for a batch under way) and releases the queue directory and the usage ledger. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.queue) {
      const opened = await this.queue.catch(() => null);
      if (!opened) return;
      await opened.flusher.stop();
      await opened.queue.close();
      await opened.ledger.close();
    } else if (this.ledgerOpen) {
      await (await this.ledgerOpen.catch(() => null))?.close();
    }
  }

  /** GET /api/me: the customer the key belongs to. */
  async me(): Promise<Me> {
    return (await call<Me>(this.net('me'), 'GET', '/api/me', { idempotent: true })).body;
  }

  /** GET /api/usage: totals over [from, to) (default the current month), per metric or per day. */
  async getUsage(q: { from?: string | Date; to?: string | Date; groupBy?: 'metric' | 'day' } = {}): Promise<UsageTotals> {
    const iso = (d: string | Date | undefined) => (d instanceof Date ? d.toISOString() : d);
    const query = { from: iso(q.from), to: iso(q.to), group_by: q.groupBy };
    return (await call<UsageTotals>(this.net('getUsage'), 'GET', '/api/usage', { query, idempotent: true })).body;
  }

  /** GET /api/subscriptions: the customer's own subscriptions. */
  async getSubscriptions(): Promise<Subscriptions> {
    return (await call<Subscriptions>(this.net('getSubscriptions'), 'GET', '/api/subscriptions', { idempotent: true })).body;
  }

  /**
   * POST /api/billing/portal-session: the URL of a Stripe customer portal session where the
   * customer's people manage their billing, sending them back to `returnUrl` (one the service's
   * BILLING_PORTAL_RETURN_URLS allows). The URL is short-lived and a bearer secret: redirect to it at
   * once, never log, store or cache it; ask again each time. A repeated request only makes another
   * session, so it is retried like a read.
   */
  async billingPortalUrl(returnUrl: string): Promise<string> {
    const res = await call<PortalSession>(this.net('billingPortalUrl'), 'POST', '/api/billing/portal-session', {
      body: { return_url: returnUrl },
      idempotent: true,
    });
    return res.body.url;
  }

  /** GET /api/invoices/upcoming: the charges the current period will bring so far (Stripe's preview, or the service's estimate). */
  async upcomingInvoice(): Promise<UpcomingInvoice> {
    return (await call<UpcomingInvoice>(this.net('upcomingInvoice'), 'GET', '/api/invoices/upcoming', { idempotent: true })).body;
  }

  /**
   * GET /api/invoices: a page of the customer's own invoices, newest first (drafts are never shown).
   * `nextCursor` (null on the last page) fetches the next one as `cursor`.
   */
  async invoices(q: { cursor?: string; limit?: number; status?: InvoicesQuery['status'] } = {}): Promise<{ data: Invoice[]; nextCursor: string | null }> {
    const query = { cursor: q.cursor, limit: q.limit, status: q.status };
    const page = (await call<InvoicesPage>(this.net('invoices'), 'GET', '/api/invoices', { query, idempotent: true })).body;
    return { data: page.data, nextCursor: page.next_cursor };
  }

  /** GET /api/invoices/:id: one of the customer's own invoices, by our id or Stripe's (in_…). */
  async invoice(id: string): Promise<Invoice> {
    return (await call<{ invoice: Invoice }>(this.net('invoice'), 'GET', `/api/invoices/${encodeURIComponent(id)}`, { idempotent: true })).body.invoice;
  }

  /**
   * POST /api/licenses/activations: takes a seat for this instance (created: true), or records the
   * heartbeat of one already active (created: false). A full plan is InstanceLimitReachedError. With a
   * queue, the instance's public key goes with it (`instance_key`, made once and kept beside the
   * queue): the service then takes usage bundles signed with it. An activation that already has
   * another key is a BillingApiError 409 INSTANCE_KEY_MISMATCH.
   */
  async activate(input: Partial<ActivationRequest> & { name?: string; hostname?: string } = {}): Promise<ActivationAnswer & { created: boolean }> {
    const http = this.net('activate');
    const fingerprint = input.fingerprint ?? this.licenseOptions.fingerprint;
    if (!fingerprint) throw new TypeError('activate needs a fingerprint (or license.fingerprint)');
    const body = {
      ...input,
      fingerprint,
      ...(this.queueDir !== undefined && input.instance_key === undefined ? { instance_key: (await this.instanceKey()).publicJwk } : {}),
    };
    try {
      // Safe to repeat: activating an active instance answers 200 with the same activation.
      const res = await call<ActivationAnswer>(http, 'POST', '/api/licenses/activations', { body, idempotent: true });
      return { ...res.body, created: res.status === 201 };
    } catch (err) {
      if (err instanceof BillingApiError && err.code === 'INSTANCE_LIMIT_REACHED') throw new InstanceLimitReachedError(err);
      throw err;
    }
  }

  /**
   * GET /api/licenses: the license, verified offline (signature against the keys built in or a key set a built-in root signed, time,
   * binding, replay) and kept as the last good one. When the service cannot be reached (network,
   * 429, 5xx), the kept license, verified again (offline: true; past its exp it answers decision
   * `expired` rather than failing). A license that does not verify is an error, never replaced by the kept one.
   * Either way with its offline helper (`allows`, `usage`: LicenseMetering).
   */
  async getLicense(q: { fingerprint?: string } = {}): Promise<ClientLicense> {
    const fingerprint = q.fingerprint ?? this.licenseOptions.fingerprint;
    const { cache, verifier } = await this.licensingFor(fingerprint);
    // Everything the service acknowledged by this moment is in the license's usage figures.
    const requestedAt = Date.now();
    this.fenceAt = Math.max(this.fenceAt, requestedAt);
    let answer: LicenseAnswer;
    try {
      answer = (await call<LicenseAnswer>(this.net('getLicense'), 'GET', '/api/licenses', { query: { fingerprint }, idempotent: true })).body;
    } catch (err) {
      if (!unreachable(err)) throw err;
      const kept = cache ? await cache.load() : this.lastLicense;
      if (!kept) throw err;
      return { ...kept, ...this.metering(kept, cache ? cache.requestedAt : this.lastRequestedAt), offline: true };
    }
    const verified = cache ? await cache.accept(answer.license, { requestedAt }) : await verifier.verify(answer.license);
    this.lastLicense = verified;
    this.lastRequestedAt = requestedAt;
    return { ...verified, ...this.metering(verified, requestedAt), offline: false };
  }

  /**
   * Verifies a license token offline (a lapsed one is refused: EXPIRED); accepting it moves the replay
   * mark. With its offline helper: this instance's reports count from the license's `iat`.
   */
  async verifyLicense(token: string): Promise<VerifiedLicense & LicenseMetering> {
    const verified = await (await this.licensingFor(this.licenseOptions.fingerprint)).verifier.verify(token);
    return { ...verified, ...this.metering(verified, null) };
  }

  /** The RFC 7638 thumbprint of this instance's public key (made once, kept beside the queue): what the activation shows as instance_key_thumbprint. */
  async instanceKeyThumbprint(): Promise<string> {
    return (await this.instanceKey()).thumbprint;
  }

  /**
   * What an admin needs to activate this instance offline, as JSON to carry out: `body` is exactly
   * the body of POST /api/customers/:id/licenses (fingerprint, the instance's public key, name and
   * hostname when given), `customer_id` the :id (null when this client does not know it). Never
   * holds anything secret. Needs a queue (the instance key is kept beside it); calls nothing.
   */
  async activationRequest(input: { fingerprint?: string; name?: string; hostname?: string; customerId?: string } = {}): Promise<ActivationRequestFile> {
    const fingerprint = input.fingerprint ?? this.licenseOptions.fingerprint;
    if (!fingerprint) throw new TypeError('activationRequest needs a fingerprint (or license.fingerprint)');
    const key = await this.instanceKey();
    return {
      format: 'activation-request/1',
      customer_id: input.customerId ?? this.licenseOptions.customerId ?? this.keyCustomerId ?? null,
      instance_key_thumbprint: key.thumbprint,
      body: {
        fingerprint,
        instance_key: key.publicJwk,
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.hostname !== undefined ? { hostname: input.hostname } : {}),
      },
    };
  }

  /**
   * Writes a usage bundle to `file`: every queued event not acknowledged yet (the oldest `maxEvents`,
   * within `maxBytes`), signed with the instance key, numbered after the last bundle (seq) and naming
   * its digest (previous). The events stay queued until a receipt acknowledges them: exporting again
   * carries them again, under the next seq. The file is written complete or not at all (temporary
   * file, fsync, rename). Calls nothing: works offline.
   */
  async exportUsage(file: string, o: { maxEvents?: number; maxBytes?: number } = {}): Promise<ExportSummary> {
    const bundles = await this.bundles('exportUsage');
    const state = await bundles.state();
    const customerId = this.licenseOptions.customerId ?? this.keyCustomerId ?? state.customer_id;
    const fingerprint = this.licenseOptions.fingerprint ?? state.fingerprint;
    if (!customerId) throw new TypeError('exportUsage needs the customer id: license.customerId (or an API key of the customer)');
    if (!fingerprint) throw new TypeError('exportUsage needs the instance fingerprint: license.fingerprint');
    return bundles.export(file, { customerId, fingerprint, ...o });
  }

  /**
   * Imports what the service answered for a bundle (the upload's answer JSON, or the receipt's JWS
   * alone): the receipt is verified offline (the license trust anchor, typ usage-receipt+jwt, issuer,
   * this customer, this instance, a bundle this instance exported with exactly that digest, the clock
   * against the license mark); a receipt that does not verify is a ReceiptError and changes nothing,
   * one imported before is ReceiptError REPLAYED. Then its refused events go to the dead letters with
   * their reason, the bundle's events still queued leave the queue (events queued after the export
   * stay), and the answer's license is verified and kept as getLicense's would be. A license that does
   * not verify (or that the service could not issue) is reported in `licenseError` and the kept one
   * stays: the receipt's effects apply all the same, as the service has stored those events.
   */
  async importReceipt(file: string): Promise<ReceiptImport> {
    const bundles = await this.bundles('importReceipt');
    const { ledger } = await this.queue!;
    const answer = await readAnswer(file);
    const state = await bundles.state();
    const customerId = this.licenseOptions.customerId ?? this.keyCustomerId ?? state.customer_id;
    const fingerprint = this.licenseOptions.fingerprint ?? state.fingerprint;
    if (!customerId || !fingerprint)
      throw new ReceiptError('UNKNOWN_BUNDLE', 'This instance has exported no usage bundle: there is nothing a receipt could be for.');
    const l = await this.licensingShared();
    const claims = await verifyReceipt(answer.receipt, {
      keys: l.keys,
      store: l.store,
      issuer: this.licenseOptions.issuer,
      customerId,
      fingerprint,
      clockToleranceSeconds: this.licenseOptions.clockToleranceSeconds,
    });

    let ackAt = 0;
    let license: ClientLicense | null = null;
    let licenseError: ReceiptImport['licenseError'] = null;
    const effects = await bundles.applyReceipt(
      claims,
      (leaving, rejected) => {
        ackAt = this.ackTime();
        const events = leaving.map((e) => e.event).filter((e) => !rejected.has(e.idempotency_key));
        const receipts = events.map((e) => ({ id: '', idempotencyKey: e.idempotency_key, replayed: false, queued: false as const }));
        return ledger.prepare(ackAt, events, receipts);
      },
      async () => {
        if (answer.license === null) {
          if (answer.licenseError) licenseError = { ...answer.licenseError, source: 'service' };
          return;
        }
        try {
          license = await this.keepLicense(answer.license, fingerprint, customerId, ackAt);
        } catch (err) {
          if (!isLicenseError(err)) throw err;
          licenseError = { code: err.code, message: err.message, source: 'client' };
        }
      },
    );
    return {
      bundleId: claims.bundle_id,
      seq: claims.seq,
      acknowledged: effects.acknowledged,
      deadLettered: effects.deadLettered,
      rejected: claims.rejected.length,
      missingSeq: claims.missing_seq,
      previousMismatch: claims.previous_mismatch,
      applied: claims.applied,
      duplicates: claims.duplicates,
      late: claims.late,
      license,
      licenseError,
    };
  }

  /**
   * POST /api/usage/bundles, from a connected machine of the customer: the bundle file's text as it
   * is; answers the receipt and a fresh license (carry the whole answer back to the instance, for
   * importReceipt). Uploading the same bundle again answers the same receipt, so it is retried like a read.
   */
  async uploadUsageBundle(bundle: string): Promise<UsageBundleAnswer> {
    const http = this.net('uploadUsageBundle');
    const res = await call<UsageBundleAnswer>(http, 'POST', '/api/usage/bundles', { body: { bundle }, idempotent: true, maxAnswerBytes: 64 * 1024 * 1024 });
    return res.body;
  }

  /** A license that came with a receipt: verified and kept like getLicense's, counting this instance's reports from after the receipt's acknowledgement. */
  private async keepLicense(token: string, fingerprint: string, customerId: string, ackAt: number): Promise<ClientLicense> {
    const { cache, verifier } = await this.licensingFor(fingerprint, customerId);
    // The service counted the bundle's events in this license: what was acknowledged with it is before requestedAt.
    const requestedAt = Math.max(Date.now(), ackAt + 1, this.fenceAt);
    this.fenceAt = requestedAt;
    const verified = cache ? await cache.accept(token, { requestedAt }) : await verifier.verify(token);
    this.lastLicense = verified;
    this.lastRequestedAt = requestedAt;
    return { ...verified, ...this.metering(verified, requestedAt), offline: true };
  }

  /** The request settings, unless this client is offline only. */
  private net(method: string): HttpSettings {
    if (this.offline) throw new OfflineModeError(method);
    return this.settings;
  }

  /** The instance key beside the queue, read or made once (another process may be making it at the same moment: one key results). */
  private instanceKey(): Promise<InstanceKey> {
    const dir = this.queueDir;
    if (dir === undefined) return Promise.reject(new TypeError('the instance key is kept beside the usage queue: give queueDir'));
    this.instanceKeyOpen ??= loadOrCreateInstanceKey(dir).catch((err: unknown) => {
      this.instanceKeyOpen = null;
      throw err;
    });
    return this.instanceKeyOpen;
  }

  private async bundles(method: string): Promise<UsageBundles> {
    if (this.closed) throw new Error('the client is closed');
    if (!this.queue) throw new TypeError(`${method} needs a queue (queueDir): usage bundles carry the queued events`);
    const { queue } = await this.queue;
    this.bundlesOpen ??= Promise.resolve(new UsageBundles(queue, () => this.instanceKey()));
    return this.bundlesOpen;
  }

  /** A license's offline helper: its signed figures plus this instance's reports since `requestedAt` (else its iat). */
  private metering(license: VerifiedLicense, requestedAt: number | null): LicenseMetering {
    const usage = async (metric: string): Promise<MeteredUsage | null> => {
      if (!Object.hasOwn(license.metered, metric)) return null;
      const now = Date.now();
      const local = await this.localMicros(metric, localSince(license.claims, now, requestedAt));
      return meteredUsage(license.claims, metric, local, now);
    };
    return {
      usage,
      allows: async (metric, n = 1) => {
        allowsMore(null, n); // a bad n is a TypeError whatever the metric
        return allowsMore(await usage(metric), n);
      },
    };
  }

  /** Millionths of `metric` this instance reported: acknowledged at or after `sinceMs`, and waiting in the queue. */
  private async localMicros(metric: string, sinceMs: number): Promise<bigint> {
    if (this.queue) {
      const { queue, ledger } = await this.queue;
      return ledger.since(metric, sinceMs) + queue.waitingMicros(metric);
    }
    return (await this.ledger()).since(metric, sinceMs);
  }

  /** Without a queue, the usage ledger: in license.dir (read back after a restart), or in memory. Opened once (again after a failure). */
  private ledger(): Promise<UsageLedger> {
    this.ledgerOpen ??= (async () => {
      const dir = this.licenseOptions.dir;
      if (dir === undefined) return UsageLedger.memory();
      if (this.licenseFolder) await this.licenseFolder();
      return UsageLedger.open(dir, { onError: this.onError });
    })().catch((err: unknown) => {
      this.ledgerOpen = null;
      throw err;
    });
    return this.ledgerOpen;
  }

  /** When an acknowledgement is stamped in the ledger: now, and after the last license request (see fenceAt). */
  private ackTime(): number {
    return Math.max(Date.now(), this.fenceAt + 1);
  }

  /** Counts what the service acknowledged (sendNow); a ledger that cannot be written is reported, never a failed report. */
  private async recordAcknowledged(events: UsageEventBody[], receipts: UsageReceipt[]): Promise<void> {
    try {
      const ledger = await this.ledger();
      await ledger.record(this.ackTime(), events, receipts);
    } catch (err) {
      this.onError(err);
    }
  }

  /** The trust anchor and the mark, made once per client (made again after a failure: a folder fixed, say). */
  private licensingShared(): Promise<Licensing> {
    this.licensing ??= this.startLicensing().catch((err: unknown) => {
      this.licensing = null;
      throw err;
    });
    return this.licensing;
  }

  private async startLicensing(): Promise<Licensing> {
    const o = this.licenseOptions;
    const keySetFile = o.dir ? path.join(o.dir, 'license-keys.jws') : null;
    if (this.licenseFolder) await this.licenseFolder();
    // A key set kept from an earlier fetch, or carried in: checked against the roots again, never trusted as read.
    const keySet = o.keySet ?? (keySetFile ? (await readPrivate(keySetFile))?.toString('utf8') : undefined);
    return {
      keys: trustAnchor({
        trustedKeys: jwksFrom(o.trustedKeys, 'license.trustedKeys'),
        trustedRoots: jwksFrom(o.trustedRoots, 'license.trustedRoots'),
        keySet,
        // Offline, nothing is fetched: a key set comes in as license.keySet.
        keySetUrl:
          o.trustedRoots && !this.offline
            ? (o.keySetUrl ?? new URL('.well-known/license-keys', this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`).toString())
            : undefined,
        issuer: o.issuer,
        clockToleranceSeconds: o.clockToleranceSeconds,
        allowInsecure: o.allowInsecureKeySet,
        fetch: this.settings.fetch,
        onKeySet: keySetFile ? (token) => writeFileAtomic(keySetFile, `${token}\n`, 0o600, 'license') : undefined,
      }),
      store: o.dir ? fileLicenseStore(path.join(o.dir, 'license-mark.json')) : memoryLicenseStore(),
      byFingerprint: new Map(),
    };
  }

  private async licensingFor(fingerprint: string | undefined, customerId = this.licenseOptions.customerId ?? this.keyCustomerId) {
    const o = this.licenseOptions;
    const l = await this.licensingShared();
    const key = JSON.stringify([fingerprint ?? '', customerId ?? '']);
    let bound = l.byFingerprint.get(key);
    if (!bound) {
      const verify = {
        keys: l.keys,
        store: l.store,
        issuer: o.issuer,
        customerId,
        fingerprint,
        requireBinding: o.requireBinding ?? fingerprint !== undefined,
        clockToleranceSeconds: o.clockToleranceSeconds,
      };
      bound = { cache: o.dir ? new LicenseCache({ path: path.join(o.dir, 'license.json'), verify }) : null, verifier: createLicenseVerifier(verify) };
      l.byFingerprint.set(key, bound);
    }
    return bound;
  }

  /** Batches of maxBatch, one after the other; what was not acknowledged goes back to the caller with its keys. */
  private async sendNow(events: UsageEventBody[]): Promise<UsageReceipt[]> {
    const receipts: UsageReceipt[] = [];
    for (let i = 0; i < events.length; i += this.maxBatch) {
      const batch = events.slice(i, i + this.maxBatch);
      let answered: UsageReceipt[];
      try {
        answered = await postBatch(this.net('reportUsage'), batch);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new UsageReportError(`${events.length - i} event(s) not acknowledged: ${why}`, events.slice(i), receipts, { cause: err });
      }
      receipts.push(...answered);
      await this.recordAcknowledged(batch, answered);
    }
    return receipts;
  }
}

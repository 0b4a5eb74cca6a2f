/**
 * npm run bench:departures: each departure from the stock stack (docs/decisions/) against what it
 * replaces, in one process: the two variants alternate block by block (A, B, B, A, ...) so a busy
 * machine's drift falls on both alike, and the figures are medians over rounds. CPU is this
 * process's (client and server both run here; the client's share is the same for both variants, so
 * the difference between them is the server's).
 *
 * Settings: DEPARTURES_ROUNDS (6), DEPARTURES_REQUESTS per block (3000), DEPARTURES_ONLY (a
 * comma-separated list of the names below).
 */
import bcrypt from 'bcrypt';
import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createHttpServer } from '../src/http/http-classes';
import { jsonBody } from '../src/middleware/json-body';
import { usageSchemas } from '../src/modules/usage/usage-schemas';

const ROUNDS = Number(process.env.DEPARTURES_ROUNDS ?? 6);
const REQUESTS = Number(process.env.DEPARTURES_REQUESTS ?? 3000);
const ONLY = process.env.DEPARTURES_ONLY?.split(',');
const IN_FLIGHT = 10;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** CPU microseconds of this process per request: `requests` POSTs (or GETs) with IN_FLIGHT at once over keep-alive. */
async function load(server: http.Server, method: string, body: string | undefined, requests: number): Promise<number> {
  const port = (server.address() as AddressInfo).port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const headers: http.OutgoingHttpHeaders = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: '/', agent, headers }, (res) => {
        if (res.statusCode! >= 300) reject(new Error(`answered ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(body);
    });
  let left = requests;
  const worker = async () => {
    while (left-- > 0) await one();
  };
  const start = cpuNow();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const used = cpuNow() - start;
  agent.destroy();
  return used / requests;
}

const listen = (server: http.Server) => new Promise<http.Server>((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));

interface Variant {
  label: string;
  /** One block of work; returns a cost per operation (us). */
  run(): Promise<number> | number;
}

/** Alternates two variants over ROUNDS (A B, then B A, ...); medians of each and of the per-round difference. */
async function compare(name: string, unit: string, a: Variant, b: Variant): Promise<void> {
  if (ONLY && !ONLY.includes(name)) return;
  await a.run(); // warm-up: compile both paths before measuring
  await b.run();
  const as: number[] = [];
  const bs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [b, a] : [a, b];
    for (const v of order) (v === a ? as : bs).push(await v.run());
  }
  const diffs = as.map((x, i) => x - bs[i]!);
  const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(1) : x.toFixed(3));
  console.log(
    `${name}: ${a.label} ${fmt(median(as))} ${unit}, ${b.label} ${fmt(median(bs))} ${unit}; ` +
      `saved ${fmt(median(diffs))} ${unit} (rounds: ${diffs.map(fmt).join(', ')})`,
  );
}

/** A server for `app` (node's classes or the production ones) measured under load. */
async function serverVariant(label: string, server: http.Server, method: string, body?: string): Promise<Variant & { close(): Promise<void> }> {
  await listen(server);
  return {
    label,
    run: () => load(server, method, body, REQUESTS),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const NOW = Date.now();
const event = (i: number) => ({ metric: 'api_calls', quantity: 1, idempotency_key: `bench-${i}-${randomBytes(8).toString('hex')}` });
const SINGLE = JSON.stringify(event(0));
const BATCH = JSON.stringify({ events: Array.from({ length: 100 }, (_, i) => event(i)) });

async function requestClasses(): Promise<void> {
  // A bare Express app (express.json, answer from a setImmediate), as the record first measured it.
  const app = express();
  app.use(express.json());
  app.post('/', (_req, res) => void setImmediate(() => res.json({ ok: true })));
  const ours = await serverVariant('express prototypes from the start', createHttpServer(app), 'POST', SINGLE);
  const node = await serverVariant("node's classes", http.createServer(app), 'POST', SINGLE);
  await compare('request-classes', 'us CPU/request', node, ours);
  await Promise.all([ours.close(), node.close()]);
}

/** An app reading the body with `reader` and answering 204. */
function bodyApp(reader: RequestHandler): Express {
  const app = express();
  app.post('/', reader, (req, res) => {
    if (typeof req.body !== 'object') throw new Error('no body read');
    res.statusCode = 204;
    res.end();
  });
  return app;
}

async function jsonBodyReader(): Promise<void> {
  for (const [what, body] of [
    ['one event', SINGLE],
    ['a 100-event batch', BATCH],
  ] as const) {
    const ours = await serverVariant('jsonBody', createHttpServer(bodyApp(jsonBody('100kb'))), 'POST', body);
    const stock = await serverVariant(
      'express.json',
      createHttpServer(bodyApp(express.json({ limit: '100kb', strict: true, type: 'application/json' }))),
      'POST',
      body,
    );
    await compare(`json-body (${what})`, 'us CPU/request', stock, ours);
    await Promise.all([ours.close(), stock.close()]);
  }
}

/**
 * helmet's headers computed once and replayed per request: the departure the service had until
 * this measurement showed it saved about 1 us a request (docs/decisions/security-headers.md).
 */
function securityHeaders(): RequestHandler {
  const set = new Map<string, string | number | readonly string[]>();
  const removed = new Set<string>();
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => void (set.set(name, value), removed.delete(name.toLowerCase())),
    removeHeader: (name: string) => void (set.delete(name), removed.add(name.toLowerCase())),
    getHeader: (name: string) => set.get(name),
  };
  helmet()({ headers: {}, method: 'GET', url: '/' } as never, recorder as never, () => undefined);
  const headers = new Map([...set].map(([k, v]) => [k, Array.isArray(v) ? [...(v as string[])] : String(v)] as const));
  return (_req, res, next) => {
    res.setHeaders(headers);
    for (const name of removed) res.removeHeader(name);
    next();
  };
}

async function headersOnce(): Promise<void> {
  const app = (headers: RequestHandler) => {
    const a = express();
    a.use(headers);
    a.get('/', (_req, res) => void res.end('ok'));
    return a;
  };
  const ours = await serverVariant('headers computed once', createHttpServer(app(securityHeaders())), 'GET');
  const stock = await serverVariant('helmet()', createHttpServer(app(helmet())), 'GET');
  await compare('security-headers', 'us CPU/request', stock, ours);
  await Promise.all([ours.close(), stock.close()]);
  // The middleware alone on node's own response objects (a fresh one per call, for both): the
  // difference is below what a loaded server shows through its noise.
  const req = new http.IncomingMessage(new net.Socket());
  const next = () => undefined;
  const on = (mw: RequestHandler) => perCall(() => mw(req as never, new http.ServerResponse(req) as never, next), 20000);
  await compare(
    'security-headers (the middleware alone)',
    'us/request',
    { label: 'helmet()', run: on(helmet()) },
    { label: 'headers computed once', run: on(securityHeaders()) },
  );
}

/** `fn` run `times` times; microseconds per call. */
const perCall = (fn: () => unknown, times: number) => () => {
  const start = process.hrtime.bigint();
  for (let i = 0; i < times; i++) fn();
  return Number(process.hrtime.bigint() - start) / 1000 / times;
};

async function handCheck(): Promise<void> {
  const s = usageSchemas(['api_calls', 'storage_gb'], 100, () => NOW);
  for (const [what, text, times] of [
    ['one event', SINGLE, 20000],
    ['a 100-event batch', BATCH, 400],
  ] as const) {
    const parsed: unknown = JSON.parse(text);
    if (s.fastBody(parsed) === undefined || !s.body.safeParse(parsed).success) throw new Error('the bench body must pass both');
    // As the route runs them: the hand check, and zod only when it steps aside (never, here).
    await compare(
      `hand-check (${what})`,
      'us/body',
      { label: 'zod', run: perCall(() => s.body.safeParse(parsed), times) },
      { label: 'hand check', run: perCall(() => s.fastBody(parsed), times) },
    );
  }
}

async function bcryptCache(): Promise<void> {
  const secret = randomBytes(32).toString('base64url');
  const hash = await bcrypt.hash(secret, 12);
  const remembered = new Map([[createHash('sha256').update(secret).digest('hex'), { keyId: 'k' }]]);
  await compare(
    'bcrypt-cache (cost 12)',
    'us/verification',
    {
      label: 'bcrypt.compare',
      run: async () => {
        const start = process.hrtime.bigint();
        for (let i = 0; i < 3; i++) if (!(await bcrypt.compare(secret, hash))) throw new Error('no match');
        return Number(process.hrtime.bigint() - start) / 1000 / 3;
      },
    },
    {
      label: 'SHA-256 and a Map lookup',
      run: perCall(() => remembered.get(createHash('sha256').update(secret).digest('hex')), 20000),
    },
  );
}

async function main(): Promise<void> {
  console.log(`node ${process.version}; ${ROUNDS} rounds, alternated; ${REQUESTS} requests a block, ${IN_FLIGHT} in flight`);
  await requestClasses();
  await jsonBodyReader();
  await headersOnce();
  await handCheck();
  await bcryptCache();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

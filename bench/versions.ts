/**
 * npm run bench:versions: usage ingestion of two versions of the service, alternated on one machine.
 *
 * BENCH_OLD and BENCH_NEW are checkouts of the service (BENCH_NEW defaults to this one), each with
 * its node_modules (a symlink to another checkout's is fine when the dependencies are the same).
 * One embedded PostgreSQL; each version gets a database of its own, the customer and plan `npm run
 * bench` makes (api_calls metered, thresholds 50, 80, 100, an allowance never crossed) and its own
 * server process, started as `npm start` runs it. Both stay up; autocannon loads one at a time, in
 * the order old, new in even rounds and new, old in odd ones (single events, then 100-event batches),
 * so drift falls on both alike. Ratios new/old are taken within a round; the figures reported are
 * medians over rounds. CPU per request is read from /proc for the server process.
 *
 * Settings: BENCH_OLD (required), BENCH_NEW, BENCH_ROUNDS (4), BENCH_DURATION seconds per run (10),
 * BENCH_WARMUP seconds (3), BENCH_CONNECTIONS (50), BENCH_OUT (a JSON file to write).
 */
import autocannon from 'autocannon';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres';

const OLD = process.env.BENCH_OLD;
const NEW = path.resolve(process.env.BENCH_NEW ?? path.join(__dirname, '..'));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BATCH = 100;

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
function cpuMicros(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round3 = (x: number) => Math.round(x * 1000) / 1000;

interface Version {
  label: 'old' | 'new';
  dir: string;
  child: ChildProcess;
  url: string;
  apiKey: string;
}

/** One version's server, as `npm start` runs it (its own package.json's node options), on its own database. */
async function startVersion(label: Version['label'], dir: string, databaseUrl: string): Promise<Version> {
  const flags = (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
    .split(/\s+/)
    .filter((a) => a.startsWith('--'));
  const port = await freePort();
  const adminToken = randomBytes(32).toString('hex');
  const child = spawn(process.execPath, [...flags, '--require', 'tsx/cjs', 'src/server.ts'], {
    cwd: dir,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      LICENSE_SIGNING_KEYS: JSON.stringify(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' })),
      LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
      WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
      STRIPE_ENABLED: 'false',
      REDIS_URL: '',
      DATABASE_URL: databaseUrl,
      ADMIN_API_TOKEN: adminToken,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DB_POOL_MAX: '10',
      RATE_LIMIT_API: '100000000/1m',
      RATE_LIMIT_USAGE: '100000000/1m',
      RATE_LIMIT_USAGE_ADDRESS: '100000000/1m',
      RATE_LIMIT_ADMIN: '100000000/1m',
      RATE_LIMIT_AUTH_FAILURES: '100000000/1m',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (/listening/.test(seen)) {
        child.stdout.removeListener('data', onData);
        child.stdout.resume(); // drained and dropped, as a log shipper would take it
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => (seen += d.toString()));
    child.on('exit', (code) => reject(new Error(`${label} (${dir}) exited ${code}:\n${seen}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const adminJson = { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' };
  const post = async (p: string, body: unknown): Promise<unknown> => {
    const res = await fetch(`${url}${p}`, { method: 'POST', headers: adminJson, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`${label}: POST ${p} answered ${res.status} ${await res.text()}`);
    return res.json();
  };
  const created = (await post('/api/customers', { email: `bench-${label}@example.com`, company_name: 'Bench' })) as {
    customer: { id: string };
    api_key: string;
  };
  await post('/api/plans', {
    code: 'bench',
    name: 'Bench',
    entitlements: { features: ['sso'], limits: { api_calls: 1e12 }, overage: { api_calls: 'block' }, thresholds: [50, 80, 100] },
  });
  await post(`/api/customers/${created.customer.id}/subscriptions`, { plan: 'bench' });
  return { label, dir, child, url, apiKey: created.api_key };
}

let counter = 0;
const uniqueKey = (tag: string) => `${tag}-${process.pid}-${++counter}`;
const bodies = {
  single: () => JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: uniqueKey('s') }),
  batch: () => JSON.stringify({ events: Array.from({ length: BATCH }, () => ({ metric: 'api_calls', quantity: 1, idempotency_key: uniqueKey('b') })) }),
};
type Scenario = keyof typeof bodies;

interface Run {
  rps: number;
  p99_ms: number;
  cpu_us_per_req: number;
  failed: number;
}

function load(v: Version, scenario: Scenario, duration: number): Promise<Run> {
  const cpu0 = cpuMicros(v.child.pid!);
  const request: autocannon.Request = {
    method: 'POST',
    path: '/api/usage',
    headers: { 'content-type': 'application/json', 'x-api-key': v.apiKey },
    setupRequest: (r) => ({ ...r, body: bodies[scenario]() }),
  };
  return new Promise((resolve, reject) => {
    autocannon({ url: v.url, connections: CONNECTIONS, duration, requests: [request] }, (err, r) => {
      if (err) return reject(err instanceof Error ? err : new Error(String(err)));
      resolve({
        rps: r.requests.average,
        p99_ms: r.latency.p99,
        cpu_us_per_req: Math.round((cpuMicros(v.child.pid!) - cpu0) / Math.max(1, r.requests.total)),
        failed: r.non2xx + r.errors + r.timeouts,
      });
    });
  });
}

async function main(): Promise<void> {
  if (!OLD) throw new Error('BENCH_OLD: the directory of the old version (a checkout with its node_modules)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bench-versions-'));
  fs.chmodSync(dir, 0o755);
  const pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: false, database: 'billing_bench' });
  const versions: Version[] = [];
  try {
    const admin = new Client({ connectionString: pg.url });
    await admin.connect();
    const dbUrl = (name: string) => Object.assign(new URL(pg.url), { pathname: `/${name}` }).toString();
    for (const [label, d] of [
      ['old', path.resolve(OLD)],
      ['new', NEW],
    ] as const) {
      await admin.query(`create database bench_${label}`);
      versions.push(await startVersion(label, d, dbUrl(`bench_${label}`)));
      console.log(`${label}: ${d} (${execFileSync('git', ['-C', d, 'rev-parse', '--short', 'HEAD']).toString().trim()})`);
    }
    console.log(
      `load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}; warm-up ${WARMUP}s each`,
    );
    for (const v of versions) for (const s of ['single', 'batch'] as const) await load(v, s, WARMUP);

    const runs: Record<Scenario, Record<Version['label'], Run>>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const round = { single: {}, batch: {} } as Record<Scenario, Record<Version['label'], Run>>;
      for (const s of ['single', 'batch'] as const) {
        for (const v of r % 2 === 0 ? versions : [...versions].reverse()) {
          const run = await load(v, s, DURATION);
          round[s][v.label] = run;
          const rate = s === 'batch' ? `${Math.round(run.rps * BATCH)} events/s` : `${Math.round(run.rps)} req/s`;
          console.log(
            `round ${r + 1} ${s.padEnd(6)} ${v.label}  ${rate}  p99 ${run.p99_ms} ms  cpu ${run.cpu_us_per_req} us/req${run.failed ? `  FAILED ${run.failed}` : ''}`,
          );
        }
      }
      runs.push(round);
    }
    await admin.end();
    // Configured, none crossed: each version's watch (the new one's) had nothing to announce.
    const crossed: Record<string, number> = {};
    for (const v of versions) {
      const c = new Client({ connectionString: dbUrl(`bench_${v.label}`) });
      await c.connect();
      crossed[v.label] = Number((await c.query<{ n: string }>('select count(*) as n from usage_threshold_crossings')).rows[0]!.n);
      await c.end();
    }

    const summary = (s: Scenario) => ({
      old_rps: Math.round(median(runs.map((r) => r[s].old.rps))),
      new_rps: Math.round(median(runs.map((r) => r[s].new.rps))),
      ratio: round3(median(runs.map((r) => r[s].new.rps / r[s].old.rps))),
      per_round: runs.map((r) => round3(r[s].new.rps / r[s].old.rps)),
      old_cpu_us: median(runs.map((r) => r[s].old.cpu_us_per_req)),
      new_cpu_us: median(runs.map((r) => r[s].new.cpu_us_per_req)),
      cpu_ratio: round3(median(runs.map((r) => r[s].new.cpu_us_per_req / r[s].old.cpu_us_per_req))),
      old_p99_ms: median(runs.map((r) => r[s].old.p99_ms)),
      new_p99_ms: median(runs.map((r) => r[s].new.p99_ms)),
    });
    const result = {
      single: summary('single'),
      batch: summary('batch'),
      failed_requests: runs.flatMap((r) => [r.single.old, r.single.new, r.batch.old, r.batch.new]).reduce((n, x) => n + x.failed, 0),
      settings: { rounds: ROUNDS, duration_s: DURATION, connections: CONNECTIONS, batch: BATCH, cpus: os.cpus().length },
      load_average_after: os.loadavg().map((l) => Math.round(l * 100) / 100),
    };
    console.log('\n| measure | old | new | new/old (median of rounds; each round) |');
    console.log('| --- | --- | --- | --- |');
    for (const s of ['single', 'batch'] as const) {
      const x = result[s];
      const unit = s === 'batch' ? BATCH : 1;
      console.log(
        `| ${s === 'batch' ? '100-event batch, events/s' : 'single event, req/s'} | ${x.old_rps * unit} | ${x.new_rps * unit} | ${x.ratio} (${x.per_round.join(', ')}) |`,
      );
      console.log(`| ${s}: server CPU per request, us | ${x.old_cpu_us} | ${x.new_cpu_us} | ${x.cpu_ratio} |`);
      console.log(`| ${s}: p99, ms | ${x.old_p99_ms} | ${x.new_p99_ms} | |`);
    }
    console.log(`\nthreshold crossings recorded: old ${crossed.old}, new ${crossed.new}; failed requests: ${result.failed_requests}`);
    if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const v of versions) v.child.kill('SIGTERM');
    await Promise.all(versions.map((v) => new Promise((r) => (v.child.exitCode !== null ? r(null) : v.child.on('exit', r)))));
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

/**
 * npm run bench: the service against a naive baseline on the same embedded PostgreSQL.
 *
 * Both servers run as child processes; autocannon loads them from this process. Runs alternate
 * baseline and service within each round (the order flips every round), and ratios are taken
 * within a round only: these machines drift by 20-30% between runs. The reported figures are
 * medians over rounds.
 *
 * Settings: BENCH_ROUNDS (3), BENCH_DURATION seconds per run (10), BENCH_WARMUP seconds (3),
 * BENCH_CONNECTIONS (50), BENCH_OUT (a JSON file to write).
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

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BATCH = 100;
const root = path.resolve(__dirname, '..');

interface Run {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  non2xx: number;
  errors: number;
  /** CPU time the server process spent per request served, in microseconds. */
  cpu_us_per_req: number;
  /** CPU time PostgreSQL (every backend of the cluster) spent per request served, in microseconds. */
  pg_cpu_us_per_req: number;
}

/** Clock ticks per second of /proc's CPU counters. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU time of one process so far, in microseconds (Linux /proc). */
function cpuMicros(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
}

/**
 * CPU time of a PostgreSQL cluster: its postmaster, the backends it has reaped (cutime/cstime: a
 * pool that closes idle connections must not lose their time) and every backend still running.
 */
function clusterCpuMicros(postmaster: number): number {
  const stat = fs.readFileSync(`/proc/${postmaster}/stat`, 'utf8');
  const own = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let total = ((Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])) * 1e6) / CLK_TCK;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === postmaster) total += ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
    } catch {
      // gone in between
    }
  }
  return total;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The node options `npm start` runs the service with (package.json), so the benchmark runs it as deployed. */
const START_FLAGS = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
  .split(/\s+/)
  .filter((a) => a.startsWith('--'));

function startNode(script: string, env: Record<string, string>, ready: RegExp, flags: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...flags, '--require', 'tsx/cjs', script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (ready.test(seen)) {
        // From here on its output is drained and dropped, as a log shipper would take it.
        child.stdout?.removeListener('data', onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => (seen += d.toString()));
    child.on('exit', (code) => reject(new Error(`${script} exited ${code}:\n${seen}`)));
  });
}

let counter = 0;
const uniqueKey = (tag: string) => `${tag}-${process.pid}-${++counter}`;

/** Loads one server; CPU is read from the server's process and from PostgreSQL around the run. */
function load(url: string, request: autocannon.Request, duration: number, pids: { server: number; postmaster: number }): Promise<Run> {
  const [cpu0, pg0] = [cpuMicros(pids.server), clusterCpuMicros(pids.postmaster)];
  return new Promise((resolve, reject) => {
    autocannon({ url, connections: CONNECTIONS, duration, requests: [request] }, (err, r) => {
      if (err) return reject(err instanceof Error ? err : new Error(String(err)));
      const served = Math.max(1, r.requests.total);
      resolve({
        rps: r.requests.average,
        p50_ms: r.latency.p50,
        p99_ms: r.latency.p99,
        non2xx: r.non2xx,
        errors: r.errors + r.timeouts,
        cpu_us_per_req: Math.round((cpuMicros(pids.server) - cpu0) / served),
        pg_cpu_us_per_req: Math.round((clusterCpuMicros(pids.postmaster) - pg0) / served),
      });
    });
  });
}

const singleBody = (tag: string) => JSON.stringify({ metric: 'api_calls', quantity: 1, idempotency_key: uniqueKey(tag) });
const batchBody = (tag: string) =>
  JSON.stringify({ events: Array.from({ length: BATCH }, () => ({ metric: 'api_calls', quantity: 1, idempotency_key: uniqueKey(tag) })) });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bench-'));
  fs.chmodSync(dir, 0o755);
  console.log(`embedded PostgreSQL in ${dir}`);
  const pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, persistent: false, database: 'billing_bench' });
  const children: ChildProcess[] = [];
  try {
    const adminToken = randomBytes(32).toString('hex');
    const [servicePort, baselinePort] = [await freePort(), await freePort()];
    children.push(
      await startNode(
        'src/server.ts',
        {
          NODE_ENV: 'production',
          LICENSE_SIGNING_KEYS: JSON.stringify(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' })),
          LICENSE_JWKS_URL: 'https://billing.example.com/.well-known/jwks.json',
          WEBHOOK_SECRETS_KEY: 'abababababababababababababababababababababababababababababababab',
          STRIPE_ENABLED: 'false',
          REDIS_URL: '', // in-memory limits, as the baseline has none to share
          DATABASE_URL: pg.url,
          ADMIN_API_TOKEN: adminToken,
          PORT: String(servicePort),
          HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
          DB_POOL_MAX: '10',
          // Every limit raised so the benchmark measures the work, not the limiter.
          RATE_LIMIT_API: '100000000/1m',
          RATE_LIMIT_USAGE: '100000000/1m',
          RATE_LIMIT_USAGE_ADDRESS: '100000000/1m',
          RATE_LIMIT_ADMIN: '100000000/1m',
          RATE_LIMIT_AUTH_FAILURES: '100000000/1m',
        },
        /listening/,
        START_FLAGS,
      ),
    );
    const base = `http://127.0.0.1:${servicePort}`;
    const created = await fetch(`${base}/api/customers`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.com', company_name: 'Bench' }),
    }).then((r) => r.json() as Promise<{ customer: { id: string }; api_key: string }>);
    const apiKey = created.api_key;
    // A plan and a subscription, so the customer has a license to fetch. api_calls is metered, with
    // thresholds, and an allowance high enough never to be crossed: every write goes through the
    // threshold watch (docs/USAGE.md), which reads the period's usage and finds nothing to announce.
    const adminJson = { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' };
    const plan = await fetch(`${base}/api/plans`, {
      method: 'POST',
      headers: adminJson,
      body: JSON.stringify({
        code: 'bench',
        name: 'Bench',
        entitlements: { features: ['sso'], limits: { api_calls: 1e12 }, overage: { api_calls: 'block' }, thresholds: [50, 80, 100] },
      }),
    });
    if (plan.status !== 201) throw new Error(`the bench plan was refused: ${plan.status} ${await plan.text()}`);
    await fetch(`${base}/api/customers/${created.customer.id}/subscriptions`, { method: 'POST', headers: adminJson, body: JSON.stringify({ plan: 'bench' }) });

    const client = new Client({ connectionString: pg.url });
    await client.connect();
    // The same table as usage_events (columns, constraints, indexes, and the foreign key that
    // LIKE does not copy), so the comparison is between implementations, not schemas.
    await client.query('create table bench_baseline_events (like usage_events including all)');
    await client.query('alter table bench_baseline_events add foreign key (customer_id) references customers (id)');
    await client.end();
    children.push(
      await startNode(
        'bench/baseline-server.ts',
        { DATABASE_URL: pg.url, PORT: String(baselinePort), DB_POOL_MAX: '10', BENCH_CUSTOMER_ID: created.customer.id },
        /baseline listening/,
      ),
    );
    const baseline = `http://127.0.0.1:${baselinePort}`;
    const postmaster = Number(fs.readFileSync(path.join(dir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const svc = { server: children[0]!.pid!, postmaster };
    const naive = { server: children[1]!.pid!, postmaster };

    const json = { 'content-type': 'application/json' };
    const auth = { ...json, 'x-api-key': apiKey };
    const scenarios = {
      baseline_single: (d: number) =>
        load(baseline, { method: 'POST', path: '/usage', headers: json, setupRequest: (r) => ({ ...r, body: singleBody('b') }) }, d, naive),
      usage_single: (d: number) =>
        load(base, { method: 'POST', path: '/api/usage', headers: auth, setupRequest: (r) => ({ ...r, body: singleBody('s') }) }, d, svc),
      baseline_batch: (d: number) =>
        load(baseline, { method: 'POST', path: '/usage/batch', headers: json, setupRequest: (r) => ({ ...r, body: batchBody('bb') }) }, d, naive),
      usage_batch: (d: number) =>
        load(base, { method: 'POST', path: '/api/usage', headers: auth, setupRequest: (r) => ({ ...r, body: batchBody('sb') }) }, d, svc),
      usage_read: (d: number) => load(base, { method: 'GET', path: '/api/usage', headers: { 'x-api-key': apiKey } }, d, svc),
      license: (d: number) => load(base, { method: 'GET', path: '/api/licenses', headers: { 'x-api-key': apiKey } }, d, svc),
    };

    console.log(`service started with the node options of npm start: ${START_FLAGS.join(' ') || '(none)'}`);
    console.log(`warm-up: ${WARMUP}s each`);
    for (const run of Object.values(scenarios)) await run(WARMUP);

    const rounds: Record<keyof typeof scenarios, Run>[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const order: (keyof typeof scenarios)[][] = [
        ['baseline_single', 'usage_single'],
        ['baseline_batch', 'usage_batch'],
      ];
      const round = {} as Record<keyof typeof scenarios, Run>;
      for (const pair of order) {
        for (const name of i % 2 === 0 ? pair : [...pair].reverse()) {
          round[name] = await scenarios[name](DURATION);
          console.log(
            `round ${i + 1} ${name.padEnd(16)} ${Math.round(round[name].rps)} req/s  p50 ${round[name].p50_ms} ms  p99 ${round[name].p99_ms} ms  cpu ${round[name].cpu_us_per_req} us/req (pg ${round[name].pg_cpu_us_per_req})${round[name].non2xx || round[name].errors ? `  non-2xx ${round[name].non2xx} errors ${round[name].errors}` : ''}`,
          );
        }
      }
      for (const name of ['usage_read', 'license'] as const) {
        round[name] = await scenarios[name](DURATION);
        console.log(
          `round ${i + 1} ${name.padEnd(16)} ${Math.round(round[name].rps)} req/s  p99 ${round[name].p99_ms} ms  cpu ${round[name].cpu_us_per_req} us/req`,
        );
      }
      rounds.push(round);
    }

    // Configured, none crossed: the watch ran on every write and had nothing to announce.
    const check = new Client({ connectionString: pg.url });
    await check.connect();
    const crossed = Number((await check.query<{ n: string }>('select count(*) as n from usage_threshold_crossings')).rows[0]!.n);
    await check.end();
    console.log(`thresholds 50, 80, 100 of an allowance of 1e12 api_calls: ${crossed} crossed`);

    const med = (name: keyof typeof scenarios, f: keyof Run) => median(rounds.map((r) => r[name][f]));
    const singleRatios = rounds.map((r) => r.usage_single.rps / r.baseline_single.rps);
    const batchRatios = rounds.map((r) => r.usage_batch.rps / r.baseline_batch.rps);
    // CPU per request compared within a round too: the machine's speed drifts between rounds.
    const singleCpuRatios = rounds.map((r) => r.usage_single.cpu_us_per_req / r.baseline_single.cpu_us_per_req);
    const batchCpuRatios = rounds.map((r) => r.usage_batch.cpu_us_per_req / r.baseline_batch.cpu_us_per_req);
    const failures = rounds.flatMap((r) => Object.entries(r)).filter(([, v]) => v.non2xx > 0 || v.errors > 0);
    const cpu = (name: keyof typeof scenarios) => ({ cpu_us_per_req: med(name, 'cpu_us_per_req'), pg_cpu_us_per_req: med(name, 'pg_cpu_us_per_req') });
    const result = {
      baseline_single: {
        rps: Math.round(med('baseline_single', 'rps')),
        p50_ms: med('baseline_single', 'p50_ms'),
        p99_ms: med('baseline_single', 'p99_ms'),
        ...cpu('baseline_single'),
      },
      baseline_batch: { events_per_s: Math.round(med('baseline_batch', 'rps') * BATCH), ...cpu('baseline_batch') },
      usage_single: {
        rps: Math.round(med('usage_single', 'rps')),
        p50_ms: med('usage_single', 'p50_ms'),
        p99_ms: med('usage_single', 'p99_ms'),
        ratio: round2(median(singleRatios)),
        ...cpu('usage_single'),
      },
      usage_batch: {
        events_per_s: Math.round(med('usage_batch', 'rps') * BATCH),
        p99_ms: med('usage_batch', 'p99_ms'),
        ratio: round2(median(batchRatios)),
        ...cpu('usage_batch'),
      },
      usage_read: { rps: Math.round(med('usage_read', 'rps')), p99_ms: med('usage_read', 'p99_ms'), ...cpu('usage_read') },
      license: { rps: Math.round(med('license', 'rps')), p99_ms: med('license', 'p99_ms'), ...cpu('license') },
      settings: { rounds: ROUNDS, duration_s: DURATION, connections: CONNECTIONS, batch: BATCH, cpus: os.cpus().length, service_node_flags: START_FLAGS },
      per_round_ratios: {
        single: singleRatios.map(round2),
        batch: batchRatios.map(round2),
        single_cpu: singleCpuRatios.map(round2),
        batch_cpu: batchCpuRatios.map(round2),
      },
      cpu_ratio: { single: round2(median(singleCpuRatios)), batch: round2(median(batchCpuRatios)) },
      failed_requests: failures.length,
      thresholds_crossed: crossed,
    };

    console.log('\n| measure | baseline | service | ratio (median of rounds) |');
    console.log('| --- | --- | --- | --- |');
    console.log(`| single event POST, req/s | ${result.baseline_single.rps} | ${result.usage_single.rps} | ${result.usage_single.ratio} |`);
    console.log(
      `| single event p50 / p99, ms | ${result.baseline_single.p50_ms} / ${result.baseline_single.p99_ms} | ${result.usage_single.p50_ms} / ${result.usage_single.p99_ms} | |`,
    );
    console.log(`| 100-event batch, events/s | ${result.baseline_batch.events_per_s} | ${result.usage_batch.events_per_s} | ${result.usage_batch.ratio} |`);
    console.log(
      `| single event: server CPU per request, us | ${result.baseline_single.cpu_us_per_req} | ${result.usage_single.cpu_us_per_req} | ${result.cpu_ratio.single} |`,
    );
    console.log(
      `| single event: PostgreSQL CPU per request (approximate), us | ${result.baseline_single.pg_cpu_us_per_req} | ${result.usage_single.pg_cpu_us_per_req} | ${round2(result.usage_single.pg_cpu_us_per_req / result.baseline_single.pg_cpu_us_per_req)} |`,
    );
    console.log(
      `| 100-event batch: server CPU per request, us | ${result.baseline_batch.cpu_us_per_req} | ${result.usage_batch.cpu_us_per_req} | ${result.cpu_ratio.batch} |`,
    );
    console.log(`| GET /api/usage, req/s (p99 ms) | | ${result.usage_read.rps} (${result.usage_read.p99_ms}) | |`);
    console.log(`| GET /api/licenses (one Ed25519 signature each), req/s (p99 ms) | | ${result.license.rps} (${result.license.p99_ms}) | |`);
    if (failures.length) {
      // A ratio against a side that failed requests measures nothing: the run fails.
      console.log(`\nFAILED: ${failures.length} run(s) had non-2xx responses or errors; the ratios above do not hold`);
      process.exitCode = 1;
    }
    if (process.env.BENCH_OUT) {
      fs.writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`\nwrote ${process.env.BENCH_OUT}`);
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on('exit', r)))));
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

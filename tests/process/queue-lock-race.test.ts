/**
 * Ten real processes start at the same instant on a queue folder whose lock a dead process left:
 * in every one of 50 rounds exactly one of them owns the lock (its pid is in the file), the nine
 * others get QueueLockedError naming it, and nothing of the steal is left in the folder. Then the
 * same race on a folder with no lock at all.
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROUNDS = 50;
const RACERS = 10;
let dir: string;
const children: ChildProcess[] = [];
const inbox = new Map<number, unknown[]>();

const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());

async function replies<T>(round: number, n: number): Promise<T[]> {
  const end = Date.now() + 20_000;
  while ((inbox.get(round)?.length ?? 0) < n) {
    if (Date.now() > end) throw new Error(`round ${round}: ${inbox.get(round)?.length ?? 0} of ${n} answers`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const got = inbox.get(round) as T[];
  inbox.delete(round);
  return got;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-lock-race-'));
  let ready = 0;
  for (let i = 0; i < RACERS; i++) {
    const child = fork(path.join(__dirname, 'queue-lock-child.ts'), [], { execArgv: ['--require', 'tsx/cjs'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m: { ready?: boolean; round?: number }) => {
      if (m.ready) ready += 1;
      else inbox.set(m.round!, [...(inbox.get(m.round!) ?? []), m]);
    });
    children.push(child);
  }
  const end = Date.now() + 60_000;
  while (ready < RACERS) {
    if (Date.now() > end) throw new Error('the racing processes did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
}, 90_000);
afterAll(() => {
  for (const c of children) c.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Outcome = { pid: number; won: boolean; error?: string; message?: string };

async function race(round: number, file: string): Promise<Outcome[]> {
  const at = Date.now() + 100;
  for (const c of children) c.send({ type: 'go', file, at, round });
  const outcomes = await replies<Outcome>(round, RACERS);
  const winners = outcomes.filter((o) => o.won);
  expect({ round, winners: winners.length }).toEqual({ round, winners: 1 });
  const winner = winners[0]!.pid;
  expect(fs.readFileSync(file, 'utf8')).toBe(`${winner}\n`);
  for (const o of outcomes.filter((x) => !x.won)) {
    expect(o.error).toBe('QueueLockedError');
    expect(o.message).toContain(`held by process ${winner}`);
  }
  // Nothing of the race is left: no steal guard, no pid file, nothing set aside.
  expect(fs.readdirSync(dir).sort()).toEqual([path.basename(file)]);
  for (const c of children) c.send({ type: 'release', round: -round });
  await replies(-round, RACERS);
  expect(fs.existsSync(file)).toBe(false);
  return outcomes;
}

describe('the queue lock under a race', () => {
  test(`when ${RACERS} processes start at once on a lock a dead process left, then exactly one owns it, in each of ${ROUNDS} rounds`, async () => {
    const file = path.join(dir, 'lock');
    const winners = new Set<number>();
    for (let round = 1; round <= ROUNDS; round++) {
      fs.writeFileSync(file, `${deadPid()}\n`, { mode: 0o600 });
      const outcomes = await race(round, file);
      winners.add(outcomes.find((o) => o.won)!.pid);
    }
    // The race is real: more than one process won over the rounds.
    expect(winners.size).toBeGreaterThan(1);
  }, 240_000);

  test(`when ${RACERS} processes start at once on a folder with no lock, then exactly one owns it, in each of 20 rounds`, async () => {
    const file = path.join(dir, 'lock');
    for (let round = 101; round <= 120; round++) await race(round, file);
  }, 120_000);
});

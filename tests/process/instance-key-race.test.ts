/**
 * Ten processes start at the same instant on a queue folder without an instance key, in each of
 * five rounds: exactly one key is made (one file, 0600, one name, no temporary file left), and all
 * ten use it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CHILD = path.join(__dirname, 'instance-key-child.ts');
const TSX = require.resolve('tsx/cjs');
let root: string;

function start(dir: string, at: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--require', TSX, CHILD, dir, String(at)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-key-race-'))));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('the instance key under a race', () => {
  test('when ten processes start at once on a folder without a key, then one key is made and all ten use it, in each of five rounds', async () => {
    for (let round = 1; round <= 5; round++) {
      const dir = path.join(root, `queue-${round}`);
      // Late enough that every process is up and waiting (tsx takes a while to load).
      const at = Date.now() + 3000;
      const outcomes = await Promise.all(Array.from({ length: 10 }, () => start(dir, at)));
      expect(outcomes.map((o) => [o.code, o.stderr])).toEqual(Array(10).fill([0, '']));
      const thumbprints = new Set(outcomes.map((o) => o.stdout.trim()));
      expect({ round, keys: thumbprints.size }).toEqual({ round, keys: 1 });
      expect(fs.readdirSync(dir)).toEqual(['instance-key.json']);
      const st = fs.statSync(path.join(dir, 'instance-key.json'));
      expect([st.mode & 0o777, st.nlink]).toEqual([0o600, 1]);
    }
  }, 120_000);
});

import { spawn } from 'node:child_process';

const TSX = require.resolve('tsx/cjs');

/** How a child process ended, and what it printed. */
export interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a TypeScript file in a node process of its own (through tsx), with `env` over this one's, to its end. */
export function runTsChild(script: string, env: Record<string, string>): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--require', TSX, script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

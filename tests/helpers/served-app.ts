/**
 * The real app on a listening socket, for tests that need what only real connections give:
 * concurrency, hang-ups, and client addresses named in X-Forwarded-For (TRUST_PROXY=1).
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createTestApp, type TestApp } from './test-app';

export interface Served {
  t: TestApp;
  url: string;
  server: Server;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A client address of its own (private space, so never a public peer). */
export const clientIp = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;
export const tally = (statuses: number[]) => statuses.reduce<Record<number, number>>((acc, st) => ({ ...acc, [st]: (acc[st] ?? 0) + 1 }), {});

export async function serve(env: Record<string, string>, opts: Parameters<typeof createTestApp>[1] = {}): Promise<Served> {
  const t = await createTestApp({ TRUST_PROXY: '1', ...env }, opts);
  const server = await new Promise<Server>((resolve) => {
    const s = t.app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { t, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function stop(s: Served) {
  await new Promise((r) => s.server.close(r));
  s.server.closeAllConnections();
  await s.t.close();
}

/** One request; a server that does not answer within `timeoutMs` fails the test rather than hanging it. */
export async function call(s: Served, path: string, headers: Record<string, string>, init: RequestInit = {}, timeoutMs = 10_000) {
  const started = Date.now();
  const res = await fetch(`${s.url}${path}`, { ...init, headers, signal: AbortSignal.timeout(timeoutMs) });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code, headers: res.headers, ms: Date.now() - started };
}

export const me = (s: Served, key: string, ip: string) => call(s, '/api/me', { 'X-API-Key': key, 'X-Forwarded-For': ip });

/** A real key's start with another secret: it names a live key, so it is checked against that key's counts. */
export function sameStartKey(key: string): string {
  const prefix = key.slice(0, 'cust_'.length + 36 + 1 + 8);
  return prefix + randomBytes(32).toString('base64url').slice(0, 35);
}

/** Sends a whole request on a raw socket and hangs up at once, without reading the answer. */
export function hangUp(s: Served, headers: Record<string, string>): Promise<void> {
  const { port } = s.server.address() as AddressInfo;
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
      socket.write(['GET /api/me HTTP/1.1', 'Host: 127.0.0.1', ...lines, '', ''].join('\r\n'), () => {
        socket.destroy();
        resolve();
      });
    });
    socket.on('error', () => resolve());
  });
}

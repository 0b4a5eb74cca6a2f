import request from 'supertest';
import type { TestApp } from './test-app';

/** What a browser on the console's own page sends with each request (fetch from the same origin). */
export const SAME_ORIGIN = { 'Sec-Fetch-Site': 'same-origin' } as const;

/** The session cookie's `name=value`, from a Set-Cookie answer. */
export function sessionCookieOf(res: request.Response): string {
  const raw = res.headers['set-cookie'] as unknown as string[] | undefined;
  const cookie = raw?.find((c) => /^(__Host-)?billing_console=/.test(c));
  if (!cookie) throw new Error(`no session cookie in ${res.status} ${JSON.stringify(res.headers)}`);
  return cookie.split(';')[0]!;
}

/** Signs in to the console with the app's admin token (or `token`): the headers a console request carries. */
export async function consoleHeaders(t: TestApp, token = t.adminToken): Promise<Record<string, string>> {
  const res = await request(t.app).post('/api/console/session').set(SAME_ORIGIN).send({ token });
  if (res.status !== 201) throw new Error(`console sign-in: ${res.status} ${JSON.stringify(res.body)}`);
  return { Cookie: sessionCookieOf(res), ...SAME_ORIGIN };
}

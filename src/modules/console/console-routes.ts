import { z } from 'zod';
import { json, obj, timestamp } from '../../http/response-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import type { ConsoleSession, ConsoleSessions } from './console-sessions';

const sessionJson = obj({
  actor_id: z.string().describe('The admin token the session was made from (`admin:<12 hex>`): the actor of its audit rows'),
  created_at: timestamp,
  expires_at: timestamp.describe('CONSOLE_SESSION_MAX after sign-in: the session ends then however busy it is'),
  idle_expires_at: timestamp.describe('When it ends unless another request comes first (CONSOLE_SESSION_IDLE)'),
  idle_timeout_seconds: z.number().int(),
});

const setCookie = {
  'Set-Cookie': {
    description: 'The session cookie: HttpOnly, SameSite=Strict, Path=/ (Secure and named __Host-billing_console in production)',
    schema: z.string(),
  },
};

/** The console's session routes, beside the page (ADMIN_CONSOLE=off: not served). */
export function consoleSessionRouteSpecs() {
  return {
    postConsoleSession: defineRoute({
      method: 'post',
      path: '/api/console/session',
      auth: 'public',
      summary: 'Sign in to the console: an admin token exchanged for a session cookie',
      description:
        'Only from the console itself (a same-origin `Origin` or `Sec-Fetch-Site`; else 403). A wrong token counts against ' +
        'RATE_LIMIT_AUTH_FAILURES like a wrong bearer token. Any session the browser already had is ended: the cookie ' +
        'answered is always a new one. The token is never stored, in the database or the browser.',
      request: { body: z.strictObject({ token: z.string().min(1).max(1024) }) },
      responses: { 201: { ...json(sessionJson, 'Signed in; the cookie carries the session'), headers: setCookie } },
      errors: ['UNAUTHORIZED', 'FORBIDDEN', 'RATE_LIMITED', 'SERVICE_UNAVAILABLE'],
      noStore: true,
    }),
    getConsoleSession: defineRoute({
      method: 'get',
      path: '/api/console/session',
      auth: 'console',
      summary: 'The console session this browser holds, and when it ends',
      responses: { 200: json(sessionJson, 'The session') },
      noStore: true,
    }),
    deleteConsoleSession: defineRoute({
      method: 'delete',
      path: '/api/console/session',
      auth: 'console',
      summary: 'Sign out: the session ends on every instance at once',
      responses: { 204: { description: 'Signed out; the cookie is cleared', headers: setCookie } },
      noStore: true,
    }),
  };
}

const sessionOf = (req: { res?: { locals: Record<string, unknown> } }) => req.res!.locals.consoleSession as ConsoleSession;

export function consoleSessionHandlers(sessions: ConsoleSessions): HandlersFor<ReturnType<typeof consoleSessionRouteSpecs>> {
  return {
    postConsoleSession: async ({ body, req, ctx }) => {
      const { session, setCookie } = await sessions.signIn(req, body.token, ctx);
      return { status: 201, body: sessions.describe(session), headers: { 'Set-Cookie': setCookie } };
    },
    getConsoleSession: ({ req }) => ({ status: 200, body: sessions.describe(sessionOf(req)) }),
    deleteConsoleSession: async ({ req, ctx }) => {
      await sessions.signOut(sessionOf(req), ctx);
      return { status: 204, headers: { 'Set-Cookie': sessions.clearCookie() } };
    },
  };
}

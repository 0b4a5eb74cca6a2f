import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { AppError, NotFoundError } from '../../errors/app-error';
import { defineRoute, type HandlersFor, type RouteDef } from '../../http/route';

/**
 * The admin console's page and files (the `console/` workspace, built by `npm run build` into
 * console/dist). The page is the same for every console URL; the browser's router shows the page the
 * path names. Its data comes from the admin routes, with the session cookie (console-sessions.ts).
 *
 * Every console URL is a route of its own here, so the route table, the OpenAPI document and the
 * authorisation matrix know each one, and any other path under /console is a 404 like elsewhere.
 */

/**
 * The page's policy: scripts, styles, images and fonts from this origin only, no inline script or
 * style, no eval, requests to this origin only, never framed. The built page holds no inline script
 * (tests/browser/console.test.ts fails on any violation).
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The console's URLs (its router in console/src/app.tsx has the same list: a test holds them equal). */
export const CONSOLE_PAGES = [
  ['/console', 'Overview: customers, subscriptions, licenses, usage, forwarding and webhooks at a glance'],
  ['/console/sign-in', 'Sign in with an admin token'],
  ['/console/customers', 'Customers: search, filter, create'],
  ['/console/customers/:id', 'One customer: profile, keys, subscription, usage, license, audit trail'],
  ['/console/plans', 'Plans: list, create, edit, archive'],
  ['/console/forwarding', 'Usage forwarding to Stripe: the backlog, parked events and their retry'],
  ['/console/webhooks', 'Stripe webhook failures'],
  ['/console/events', 'Events out: endpoints, deliveries and events'],
  ['/console/audit', 'The audit log, with filters'],
] as const;

const ASSET_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.woff2': 'font/woff2',
};

/** console/dist, found from this file up (src/… under tests and tsx, dist/src/… when built). */
export function consoleDistDir(from = __dirname): string | null {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'console', 'package.json'))) return path.join(dir, 'console', 'dist');
    if (path.dirname(dir) === dir) return null;
  }
}

interface Built {
  page: string;
  assets: Map<string, { body: Buffer; type: string }>;
}

/** Read once, on first use: the files never change under a running service. */
function loader(dir: string | null): () => Built | null {
  let built: Built | null | undefined;
  return () => {
    if (built !== undefined) return built;
    if (!dir || !fs.existsSync(path.join(dir, 'index.html'))) return null; // not built yet: asked again next time
    const assets = new Map<string, { body: Buffer; type: string }>();
    const assetDir = path.join(dir, 'assets');
    for (const name of fs.existsSync(assetDir) ? fs.readdirSync(assetDir) : []) {
      const type = ASSET_TYPES[path.extname(name)];
      if (type) assets.set(name, { body: fs.readFileSync(path.join(assetDir, name)), type });
    }
    return (built = { page: fs.readFileSync(path.join(dir, 'index.html'), 'utf8'), assets });
  };
}

const notBuilt = () => new AppError('SERVICE_UNAVAILABLE', 'The console is not built: run `npm run build` (or `npm run build -w console`)');

const pageResponses = {
  200: {
    description: 'The console page; its router shows what the path names',
    content: { 'text/html': z.string() },
    headers: {
      'Content-Security-Policy': { description: 'This origin only; no inline script or style, no eval, never framed', schema: z.string() },
      'Cache-Control': { description: 'no-cache: the page names the current hashed files', schema: z.string() },
    },
  },
};

const pageRoute = (p: string, summary: string) =>
  defineRoute({
    method: 'get',
    path: p,
    auth: 'public',
    summary: `Console page: ${summary}`,
    ...(p.includes(':id') ? { request: { params: z.object({ id: z.string().regex(/^[0-9a-f-]{36}$/i) }) } } : {}),
    responses: pageResponses,
    errors: ['SERVICE_UNAVAILABLE'],
  });

export function consolePageRouteSpecs() {
  return {
    ...Object.fromEntries(CONSOLE_PAGES.map(([p, summary]) => [`page ${p}`, pageRoute(p, summary)])),
    getConsoleAssetsByFile: defineRoute({
      method: 'get',
      path: '/console/assets/:file',
      auth: 'public',
      summary: 'A file of the console (its name carries a digest of its content)',
      request: { params: z.object({ file: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/) }) },
      responses: {
        200: {
          description: 'The file, cached for a year: a new build has new names',
          content: { 'text/javascript; charset=utf-8': z.string(), 'text/css; charset=utf-8': z.string(), 'image/svg+xml': z.string() },
          headers: { 'Cache-Control': { description: 'public, a year, immutable', schema: z.string() } },
        },
      },
      errors: ['NOT_FOUND'],
    }),
  };
}

export function consolePageHandlers(dir = consoleDistDir()): HandlersFor<ReturnType<typeof consolePageRouteSpecs>> {
  const built = loader(dir);
  const page: RouteDef['handle'] = () => {
    const b = built();
    if (!b) throw notBuilt();
    return { status: 200, type: 'text/html', body: b.page, headers: { 'Content-Security-Policy': CONSOLE_CSP, 'Cache-Control': 'no-cache' } };
  };
  return {
    ...Object.fromEntries(CONSOLE_PAGES.map(([p]) => [`page ${p}`, page])),
    getConsoleAssetsByFile: ({ params }) => {
      const b = built();
      if (!b) throw notBuilt();
      const asset = b.assets.get(params.file);
      if (!asset) throw new NotFoundError('File');
      return {
        status: 200,
        type: asset.type as 'text/css; charset=utf-8',
        body: asset.body as unknown as string,
        headers: { 'Cache-Control': 'public, max-age=31536000, immutable' },
      };
    },
  };
}

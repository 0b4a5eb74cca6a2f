import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { defineRoute, type HandlersFor } from './route';

/**
 * GET /docs: Swagger UI (swagger-ui-dist), served from the installed package, never a CDN: the
 * service may run where nothing outside is reachable, and the page must not tell anyone who reads it.
 * Swagger UI and not Scalar: in a headless browser with every outside request refused, both render,
 * but Swagger UI runs under a policy without 'unsafe-eval' (Scalar's bundle evals), loads no chunks
 * lazily (Scalar has over a hundred, renamed each release), and is one package of 12 MB against
 * Scalar's 284 packages (311 MB) in production. Scalar loads fonts from its own servers and has
 * telemetry on unless told otherwise; Swagger UI's one outside call, the validator badge, is off below.
 */

/**
 * The page's own policy (the rest of the API keeps helmet's): its scripts and styles come from
 * /docs/assets only, no inline script, no eval; it talks to this origin only (/openapi.json and the
 * calls "Try it out" makes); data: images are the icons inside Swagger UI's stylesheet.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Swagger UI's settings, served as a file because the policy allows no inline script.
 * - validatorUrl null: its badge would send the document's address to validator.swagger.io (only the
 *   standalone layout shows it, not the default one used here: off in case that ever changes).
 * - queryConfigEnabled false: no ?url= or ?configUrl= from a link can point the page elsewhere.
 * - persistAuthorization false: a token typed into "Authorize" lives in the tab's memory, never in localStorage.
 * - the filter box matches tags and paths; the plugin makes it match summaries and operation ids too
 *   (the search an admin needs: "keys", "usage", "Prometheus").
 */
const INIT_SCRIPT = `'use strict';
(function () {
  // Replaces Swagger UI's filter (tag names and paths only) with one over tags, paths, summaries and ids.
  function searchSummaries() {
    return {
      fn: {
        opsFilter: function (taggedOps, phrase) {
          if (!phrase) return taggedOps;
          var p = String(phrase).toLowerCase();
          return taggedOps
            .map(function (tag, name) {
              if (String(name).toLowerCase().indexOf(p) !== -1) return tag;
              var ops = tag.get('operations').filter(function (op) {
                var o = op.get('operation');
                var text = [op.get('method'), op.get('path'), o && o.get('summary'), o && o.get('operationId')].join(' ').toLowerCase();
                return text.indexOf(p) !== -1;
              });
              return ops.size ? tag.set('operations', ops) : null;
            })
            .filter(function (tag) { return tag !== null; });
        },
      },
    };
  }
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    filter: true,
    displayOperationId: false,
    displayRequestDuration: true,
    showCommonExtensions: true,
    validatorUrl: null,
    queryConfigEnabled: false,
    persistAuthorization: false,
    plugins: [searchSummaries],
  });
})();
`;

const pkgDir = () => path.dirname(require.resolve('swagger-ui-dist/package.json'));

/** The fixed allow-list: a request names one of these, never a path on disk. */
const ASSETS = {
  'swagger-ui.css': { type: 'text/css; charset=utf-8', load: () => fs.readFileSync(path.join(pkgDir(), 'swagger-ui.css')) },
  'swagger-ui-bundle.js': { type: 'text/javascript; charset=utf-8', load: () => fs.readFileSync(path.join(pkgDir(), 'swagger-ui-bundle.js')) },
  'docs-init.js': { type: 'text/javascript; charset=utf-8', load: () => Buffer.from(INIT_SCRIPT) },
} as const;

export type DocsAsset = keyof typeof ASSETS;
export const DOCS_ASSETS = Object.keys(ASSETS) as [DocsAsset, ...DocsAsset[]];

interface Loaded {
  body: string;
  type: (typeof ASSETS)[DocsAsset]['type'];
  /** A digest of the content in each asset's URL, so a year of caching never serves a stale file. */
  version: string;
}

function loader(): () => Record<DocsAsset, Loaded> {
  let loaded: Record<DocsAsset, Loaded> | null = null;
  return () =>
    (loaded ??= Object.fromEntries(
      DOCS_ASSETS.map((name) => {
        const body = ASSETS[name].load();
        return [name, { body: body.toString('utf8'), type: ASSETS[name].type, version: createHash('sha256').update(body).digest('hex').slice(0, 16) }];
      }),
    ) as Record<DocsAsset, Loaded>);
}

function renderPage(assets: Record<DocsAsset, Loaded>): string {
  const url = (name: DocsAsset) => `/docs/assets/${name}?v=${assets[name].version}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Billing service API reference</title>
<link rel="stylesheet" href="${url('swagger-ui.css')}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${url('swagger-ui-bundle.js')}"></script>
<script src="${url('docs-init.js')}"></script>
</body>
</html>
`;
}

/**
 * The page and its assets, with the authentication API_DOCS gives /openapi.json. Admin-only assets
 * are cached privately (the browser only); public ones by any cache.
 */
export function docsPageRouteSpecs(auth: 'public' | 'admin') {
  return {
    getDocs: defineRoute({
      method: 'get',
      path: '/docs',
      auth,
      summary: 'The API reference page (Swagger UI, served from this service)',
      responses: {
        200: {
          description: 'The page; it loads its assets from /docs/assets and the document from /openapi.json',
          content: { 'text/html': z.string() },
          headers: {
            'Content-Security-Policy': { description: 'This page’s own policy: this origin only, no inline script', schema: z.string() },
            'Cache-Control': { description: 'no-cache: the page names the current assets', schema: z.string() },
          },
        },
      },
    }),
    getDocsAssetsByFile: defineRoute({
      method: 'get',
      path: '/docs/assets/:file',
      auth,
      summary: 'A file of the reference page (a fixed list; anything else is a 404)',
      request: { params: z.object({ file: z.enum(DOCS_ASSETS) }) },
      responses: {
        200: {
          description: 'The file, cached for a year (its URL carries a digest of its content)',
          content: { [ASSETS['swagger-ui.css'].type]: z.string(), [ASSETS['docs-init.js'].type]: z.string() },
          headers: { 'Cache-Control': { description: 'public (or private under API_DOCS=admin), a year, immutable', schema: z.string() } },
        },
      },
    }),
  };
}

export function docsPageHandlers(auth: 'public' | 'admin'): HandlersFor<ReturnType<typeof docsPageRouteSpecs>> {
  const assets = loader();
  let page: string | null = null;
  const cacheControl = `${auth === 'public' ? 'public' : 'private'}, max-age=31536000, immutable`;
  return {
    getDocs: () => ({
      status: 200,
      type: 'text/html',
      body: (page ??= renderPage(assets())),
      // Small, and names the current assets: always revalidated.
      headers: { 'Content-Security-Policy': DOCS_CSP, 'Cache-Control': 'no-cache' },
    }),
    getDocsAssetsByFile: ({ params }) => {
      const asset = assets()[params.file];
      return { status: 200, type: asset.type, body: asset.body, headers: { 'Cache-Control': cacheControl } };
    },
  };
}

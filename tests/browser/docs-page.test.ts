/**
 * /docs in a real browser (headless Chromium): every operation of the document rendered, the filter,
 * "Try it out" with an admin token, and nothing asked of any other origin. Every request for another
 * origin is refused and recorded, as a network without internet access would; CSP violations and
 * console errors are recorded too. Skipped only when no chromium is installed (.ci/run installs it).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { findChromium, launchChromium } from '../helpers/browser';
import { DOCS_CSP } from '../../src/http/docs-page';
import { createTestApp, TestApp } from '../helpers/test-app';

const executablePath = findChromium();
if (!executablePath) {
  console.warn('SKIPPED tests/browser/docs-page.test.ts: chromium is not installed (apt-get install -y chromium, or set CHROMIUM_PATH)');
}
const suite = executablePath ? describe : describe.skip;
/**
 * The browser reaches the app under a name that is not local (mapped to 127.0.0.1 inside Chromium):
 * Swagger UI skips some outside calls (the validator badge) for localhost and 127.0.0.1 only.
 */
const HOST = 'billing.test';
jest.setTimeout(90_000);

interface Served {
  t: TestApp;
  server: Server;
  origin: string;
  operations: { id: string; summary: string; tag: string; operationId: string }[];
}

async function serve(env: Record<string, string>): Promise<Served> {
  const t = await createTestApp(env);
  const server = t.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const port = (server.address() as AddressInfo).port;
  const origin = `http://${HOST}:${port}`;
  const spec = (await (await fetch(`http://127.0.0.1:${port}/openapi.json`, { headers: { Authorization: `Bearer ${t.adminToken}` } })).json()) as {
    paths: object;
  };
  const operations = Object.entries(spec.paths as Record<string, Record<string, { summary: string; tags: string[]; operationId: string }>>).flatMap(
    ([p, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ id: `${method.toUpperCase()} ${p}`, summary: op.summary, tag: op.tags[0]!, operationId: op.operationId })),
  );
  return { t, server, origin, operations };
}

async function stop(s: Served): Promise<void> {
  await new Promise((resolve) => s.server.close(resolve));
  await s.t.close();
}

interface Opened {
  context: BrowserContext;
  page: Page;
  /** Requests for anything but this origin: refused, and listed here. */
  offOrigin: string[];
  problems: string[];
}

async function open(browser: Browser, origin: string, headers: Record<string, string> = {}): Promise<Opened> {
  const context = await browser.newContext({ extraHTTPHeaders: headers });
  const offOrigin: string[] = [];
  const problems: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    offOrigin.push(url);
    return route.abort('internetdisconnected');
  });
  const page = await context.newPage();
  // (The browser's code is given as text: this project compiles without the DOM's types.)
  await page.addInitScript({
    content: "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
  });
  // Helmet's Cross-Origin-Opener-Policy needs HTTPS (TLS is in front in production); plain HTTP here.
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('The Cross-Origin-Opener-Policy header has been ignored') && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page, offOrigin, problems };
}

const renderedOperations = (page: Page) =>
  page.$$eval('.opblock', (blocks) =>
    blocks.map((b) => `${b.querySelector('.opblock-summary-method')?.textContent} ${b.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`),
  );

/** Polled from here: the page's policy forbids the eval a string predicate in the page would need. */
async function waitForOperations(page: Page, count: number): Promise<void> {
  const end = Date.now() + 30_000;
  while ((await page.locator('.opblock').count()) !== count) {
    if (Date.now() > end) throw new Error(`expected ${count} operations, the page shows ${await page.locator('.opblock').count()}`);
    await page.waitForTimeout(100);
  }
}

suite('the reference page in headless Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium(executablePath!, [HOST]);
  });
  afterAll(async () => {
    await browser?.close();
  });

  describe('when API_DOCS=public', () => {
    let s: Served;
    let o: Opened;
    beforeAll(async () => {
      s = await serve({ API_DOCS: 'public' });
      o = await open(browser, s.origin);
    });
    afterAll(async () => {
      await o?.context.close();
      if (s) await stop(s);
    });

    test('then every operation of the document is rendered, under the page policy, with nothing fetched from elsewhere', async () => {
      const res = await o.page.goto(`${s.origin}/docs`);
      expect(res!.status()).toBe(200);
      expect(res!.headers()['content-security-policy']).toBe(DOCS_CSP);
      await waitForOperations(o.page, s.operations.length);
      expect((await renderedOperations(o.page)).sort()).toEqual(s.operations.map((op) => op.id).sort());
      const summaries = await o.page.$$eval('.opblock-summary-description', (els) => els.map((e) => e.textContent));
      expect(summaries.sort()).toEqual(s.operations.map((op) => op.summary).sort());
      // Models (schemas) are on the page too.
      expect(await o.page.locator('section.models').count()).toBe(1);
      expect(o.offOrigin).toEqual([]);
      expect(o.problems).toEqual([]);
    });

    test('then the filter finds operations by summary as well as by path', async () => {
      const filter = o.page.locator('input.operation-filter-input');
      await filter.fill('prometheus');
      await waitForOperations(o.page, 1);
      expect(await renderedOperations(o.page)).toEqual(['GET /metrics']);

      await filter.fill('/keys');
      const keys = s.operations.filter((op) => op.id.includes('/keys')).map((op) => op.id);
      await waitForOperations(o.page, keys.length);
      expect((await renderedOperations(o.page)).sort()).toEqual(keys.sort());

      await filter.fill('');
      await waitForOperations(o.page, s.operations.length);
    });

    test('then "Try it out" calls this origin with the token given to "Authorize"', async () => {
      const { page } = o;
      await page.locator('.scheme-container button.authorize').click();
      const admin = page.locator('.auth-container').filter({ hasText: 'adminToken' });
      await admin.locator('input').fill(s.t.adminToken);
      await page.locator('.modal-ux').getByRole('button', { name: 'Apply credentials' }).first().click();
      await page.locator('.modal-ux button.btn-done').first().click();

      const op = page.locator('#operations-customers-get_api_customers');
      await op.locator('.opblock-summary-control').click();
      await op.getByRole('button', { name: 'Try it out' }).click();
      const sent = page.waitForRequest((r) => new URL(r.url()).pathname === '/api/customers');
      await op.getByRole('button', { name: 'Execute' }).click();
      const request = await sent;
      expect(new URL(request.url()).origin).toBe(s.origin);
      expect(request.headers()['authorization']).toBe(`Bearer ${s.t.adminToken}`);
      expect((await request.response())!.status()).toBe(200);
      const shown = op.locator('.live-responses-table tr.response .response-col_status').first();
      await shown.waitFor();
      expect((await shown.textContent())!.trim()).toBe('200');

      // The token stays in the tab's memory: nothing written to storage.
      expect(
        await page.evaluate(() => {
          const w = globalThis as unknown as { localStorage: object; sessionStorage: object };
          return JSON.stringify(w.localStorage) + JSON.stringify(w.sessionStorage);
        }),
      ).not.toContain(s.t.adminToken);
      expect(o.offOrigin).toEqual([]);
      expect(o.problems).toEqual([]);
    });
  });

  describe('when API_DOCS=admin', () => {
    let s: Served;
    beforeAll(async () => {
      s = await serve({ API_DOCS: 'admin' });
    });
    afterAll(async () => {
      if (s) await stop(s);
    });

    test('then a browser that sends no token gets the 401, and one that sends it (a header-adding proxy or extension) gets the whole page', async () => {
      const bare = await open(browser, s.origin);
      try {
        const res = await bare.page.goto(`${s.origin}/docs`);
        expect(res!.status()).toBe(401);
        expect(await bare.page.content()).not.toContain('/api/customers');
      } finally {
        await bare.context.close();
      }

      const withToken = await open(browser, s.origin, { Authorization: `Bearer ${s.t.adminToken}` });
      try {
        const res = await withToken.page.goto(`${s.origin}/docs`);
        expect(res!.status()).toBe(200);
        expect(res!.headers()['content-security-policy']).toBe(DOCS_CSP);
        await waitForOperations(withToken.page, s.operations.length);
        expect((await renderedOperations(withToken.page)).sort()).toEqual(s.operations.map((op) => op.id).sort());
        expect(withToken.offOrigin).toEqual([]);
        expect(withToken.problems).toEqual([]);
      } finally {
        await withToken.context.close();
      }
    });
  });
});

/**
 * The admin console in headless Chromium against the real server, as a person uses it: sign in (by
 * keyboard), create a customer and see its key once (by keyboard), rotate and revoke keys, watch the
 * usage chart move when an instance reports through the client package, release an activation,
 * change a plan, sign out, and a session that ends while the page is open. A page of another site
 * tries to act with the admin's cookie. Every page is checked with axe-core (no serious or critical
 * violation) at 1280 and 390 pixels wide, with no policy violation and no console error.
 * Skipped only when no chromium is installed (.ci/run installs it).
 *
 * CONSOLE_SCREENSHOTS=<folder> also saves each page at both widths there (docs/CONSOLE.md's pictures).
 */
import fs from 'node:fs';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import request from 'supertest';
import { BillingClient } from '../../packages/client';
import { findChromium, launchChromium } from '../helpers/browser';
import { createCustomer, createPlan, subscribe, type CreatedCustomer } from '../helpers/factories';
import { createTestApp, type TestApp } from '../helpers/test-app';

const executablePath = findChromium();
if (!executablePath) console.warn('SKIPPED tests/browser/console.test.ts: chromium is not installed (apt-get install -y chromium, or set CHROMIUM_PATH)');
const suite = executablePath ? describe : describe.skip;
jest.setTimeout(120_000);

/**
 * Chromium sends Sec-Fetch-Site (and a same-origin GET carries no Origin) only to a trustworthy
 * origin: HTTPS, or localhost. The console is reached as localhost here, as production reaches it over
 * HTTPS; the other site is a name of its own.
 */
const HOST = 'localhost';
const EVIL = 'evil.test';
const SHOTS = process.env.CONSOLE_SCREENSHOTS;
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [1280, 390] as const;

let skewMs = 0;
let t: TestApp;
let server: Server;
let origin: string;
let port: number;
let browser: Browser;

interface Opened {
  context: BrowserContext;
  page: Page;
  problems: string[];
}

/** A browser profile of its own: anything but this origin (and the test's other site) is refused and recorded. */
async function open(width: number = 1280): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const problems: string[] = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === origin || url.hostname === EVIL) return route.continue();
    problems.push(`request to another origin: ${url.href}`);
    return route.abort('internetdisconnected');
  });
  await context.addInitScript({
    content: "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    // Plain HTTP here (TLS is in front in production): helmet's COOP header is ignored, and expected refusals are logged by Chromium.
    // A 401 is how the page learns it has no session (it then shows sign-in); anything else is a problem.
    if (
      text.startsWith('The Cross-Origin-Opener-Policy header has been ignored') ||
      /Failed to load resource: the server responded with a status of 401/.test(text)
    )
      return;
    problems.push(text);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page, problems };
}

async function signIn(page: Page, next = '/console'): Promise<void> {
  await page.goto(`${origin}${next}`);
  await page.waitForURL(/\/console\/sign-in/);
  await page.getByLabel('Admin token').fill(t.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/console/sign-in'));
}

/** axe-core, run inside the page (injected over CDP: the page's policy refuses an added script tag). */
async function axeViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  return page.evaluate(
    "axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(' | ')))",
  );
}

/**
 * Polls an expression from here (page.evaluate runs over CDP; waitForFunction with a string would need
 * the eval the page's policy forbids).
 */
async function waitUntil(page: Page, expression: string, timeoutMs = 10_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !(await page.evaluate<boolean>(`!!(${expression})`));) {
    if (Date.now() > end) throw new Error(`waited ${timeoutMs} ms for ${expression}`);
    await page.waitForTimeout(50);
  }
}

/** Presses Tab until the focused element matches (the keyboard is the only way in). */
async function tabTo(page: Page, selector: string, max = 60): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(`document.activeElement && document.activeElement.matches(${JSON.stringify(selector)})`)) return;
  }
  throw new Error(`Tab never reached ${selector}`);
}

suite('the admin console in headless Chromium', () => {
  beforeAll(async () => {
    t = await createTestApp({ CONSOLE_SESSION_IDLE: '30m', USAGE_METRICS: 'api_calls,storage_gb' }, { now: () => Date.now() + skewMs });
    server = t.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
    origin = `http://${HOST}:${port}`;
    browser = await launchChromium(executablePath!, [EVIL]);
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    await t?.close();
  });
  afterEach(() => {
    skewMs = 0;
  });

  test('when an admin signs in with the keyboard alone, then the overview opens, and the token is nowhere in the browser', async () => {
    await createCustomer(t); // at least one to count, whatever ran before
    const o = await open();
    try {
      await o.page.goto(`${origin}/console`);
      await o.page.waitForURL(/\/console\/sign-in\?next=%2Fconsole$/);
      // The token field takes the focus when the page shows; type, Enter.
      await waitUntil(o.page, "document.activeElement && document.activeElement.getAttribute('name') === 'token'");
      await o.page.keyboard.type(t.adminToken);
      await o.page.keyboard.press('Enter');
      await o.page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      expect(new URL(o.page.url()).pathname).toBe('/console');
      // The preflight ran on the service's settings (test settings: some checks fail, each with its fix).
      await o.page
        .getByTestId('preflight')
        .getByText(/^\d+ of \d+ production checks pass\.$/)
        .waitFor();
      // The counts came through the session.
      expect(Number((await o.page.getByTestId('customers-active').textContent())!.replace(/,/g, ''))).toBeGreaterThan(0);
      const stored = await o.page.evaluate<string>(
        'JSON.stringify([document.cookie, Object.entries(localStorage), Object.entries(sessionStorage), location.href, document.body.innerHTML.includes(' +
          JSON.stringify(t.adminToken) +
          ')])',
      );
      expect(stored).not.toContain(t.adminToken);
      expect(JSON.parse(stored)).toEqual(['', [], [], `${origin}/console`, false]);
      const cookies = await o.context.cookies();
      expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite])).toEqual([['billing_console', true, 'Strict']]);
      expect(o.problems).toEqual([]);
    } finally {
      await o.context.close();
    }
  });

  test('when a wrong token is typed, then the API’s message is shown and no session is made', async () => {
    const o = await open();
    try {
      await o.page.goto(`${origin}/console/sign-in`);
      await o.page.getByLabel('Admin token').fill('0'.repeat(64));
      await o.page.getByRole('button', { name: 'Sign in' }).click();
      await o.page.getByRole('alert').getByText('Missing or invalid credentials').waitFor();
      expect(await o.context.cookies()).toEqual([]);
    } finally {
      await o.context.close();
    }
  });

  test('when an admin creates a customer with the keyboard alone, then its key is shown once, with a warning, and works', async () => {
    const o = await open();
    try {
      await signIn(o.page, '/console/customers');
      await o.page.getByRole('heading', { level: 1, name: 'Customers' }).waitFor();
      const email = `kb-${Date.now()}@example.com`;
      await tabTo(o.page, 'input[name="new-email"]');
      await o.page.keyboard.type(email);
      await o.page.keyboard.press('Tab');
      await o.page.keyboard.type('Keyboard Ltd');
      await o.page.keyboard.press('Enter');
      const secret = o.page.locator('input[data-secret]');
      await secret.waitFor();
      const key = await secret.inputValue();
      expect(key).toMatch(/^cust_[0-9a-f-]{36}_[A-Za-z0-9_-]+$/);
      await o.page.getByText('Shown this once.').waitFor();
      // The key works, for the customer just made.
      const me = await request(t.app).get('/api/me').set('X-API-Key', key);
      expect([me.status, me.body.customer?.email ?? me.body.email]).toEqual([200, email]);
      // Seen once: the page again does not show it, and the service cannot.
      await o.page.reload();
      await o.page.getByRole('heading', { level: 1, name: 'Customers' }).waitFor();
      expect(await o.page.locator('input[data-secret]').count()).toBe(0);
      expect(await o.page.content()).not.toContain(key);
      expect(o.problems).toEqual([]);
    } finally {
      await o.context.close();
    }
  });

  describe('a customer’s page', () => {
    let customer: CreatedCustomer;
    let planB: string;
    let o: Opened;
    beforeAll(async () => {
      customer = await createCustomer(t);
      planB = await createPlan(t, { name: 'Scale' });
      await subscribe(t, { customer, plan: await createPlan(t, { name: 'Starter' }) });
      o = await open();
      await signIn(o.page, `/console/customers/${customer.id}`);
      await o.page.getByRole('heading', { name: 'API keys' }).waitFor();
    });
    afterAll(() => o.context.close());

    test('when the key is rotated, then a confirmation names what happens, the new key is shown once, and the old one is revoked', async () => {
      const before = await t.db('api_keys').where({ customer_id: customer.id, id: customer.keyId }).first();
      expect(before?.revoked_at).toBeNull();
      await o.page.getByRole('button', { name: 'Rotate key' }).click();
      const dialog = o.page.getByRole('dialog', { name: 'Rotate the API key?' });
      await dialog.getByText('1 active key are revoked at once.').waitFor();
      await dialog.getByRole('button', { name: 'Rotate' }).click();
      const key = await o.page.locator('input[data-secret]').inputValue();
      expect(key).toMatch(/^cust_/);
      expect((await request(t.app).get('/api/me').set('X-API-Key', key)).status).toBe(200);
      expect((await t.db('api_keys').where({ id: customer.keyId }).first())?.revoked_at).not.toBeNull();
      expect((await request(t.app).get('/api/me').set('X-API-Key', customer.apiKey)).status).toBe(401);
      customer = { ...customer, apiKey: key };
    });

    test('when a key is revoked, then only after confirming, and the service refuses it at once', async () => {
      const active = await t.db('api_keys').where({ customer_id: customer.id }).whereNull('revoked_at').first();
      const revoke = o.page.getByRole('button', { name: `Revoke ${active!.start}…` });
      await revoke.click();
      const dialog = o.page.getByRole('dialog', { name: `Revoke the key ${active!.start}…?` });
      // Cancel first: nothing happens.
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      expect((await t.db('api_keys').where({ id: active!.id }).first())?.revoked_at).toBeNull();
      await revoke.click();
      await dialog.getByRole('button', { name: 'Revoke the key' }).click();
      await o.page.locator(`tr[data-key-id="${active!.id}"]`).getByText('revoked').waitFor();
      expect((await t.db('api_keys').where({ id: active!.id }).first())?.revoked_at).not.toBeNull();
      expect((await request(t.app).get('/api/me').set('X-API-Key', customer.apiKey)).status).toBe(401);
      // A key for what follows.
      const issued = await request(t.app)
        .post(`/api/customers/${customer.id}/keys`)
        .set('Authorization', `Bearer ${t.adminToken}`)
        .send({ keep_existing: true });
      customer = { ...customer, apiKey: issued.body.api_key };
    });

    test('when an instance reports usage through the client package, then the chart and its totals move', async () => {
      const total = o.page.locator('[data-metric-total="api_calls"]');
      const before = (await total.count()) ? Number((await total.textContent())!.replace(/,/g, '')) : 0;
      const client = new BillingClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: customer.apiKey, flushIntervalMs: 0 });
      try {
        await client.reportUsage([
          { metric: 'api_calls', quantity: 1200, idempotency_key: `console-${Date.now()}-1` },
          { metric: 'api_calls', quantity: 34, idempotency_key: `console-${Date.now()}-2` },
        ]);
        await client.flush();
      } finally {
        await client.close();
      }
      await o.page.getByRole('button', { name: 'Refresh' }).click();
      await o.page.locator('[data-metric-total="api_calls"]', { hasText: (before + 1234).toLocaleString('en') }).waitFor();
      await o.page.locator('[data-testid="usage-chart"] canvas').waitFor();
      expect(await o.page.locator('[data-testid="usage-chart"] canvas').count()).toBe(1);
    });

    test('when an activation is released, then its seat is freed', async () => {
      const fp = `console-fp-${Date.now()}`;
      expect(
        (await request(t.app).post('/api/licenses/activations').set('X-API-Key', customer.apiKey).send({ fingerprint: fp, name: 'build-01' })).status,
      ).toBe(201);
      await o.page.reload();
      await o.page.getByRole('button', { name: `Release ${fp}` }).click();
      await o.page
        .getByRole('dialog', { name: `Release the instance ${fp}?` })
        .getByRole('button', { name: 'Release the instance' })
        .click();
      // Released without a bound, it no longer holds a seat: it leaves the list.
      await o.page.locator(`tr[data-fingerprint="${fp}"]`).waitFor({ state: 'detached' });
      const row = await t.db('license_activations').where({ customer_id: customer.id, fingerprint: fp }).first();
      expect(row?.released_at).not.toBeNull();
    });

    test('when the license is shown, then it is the status and the seats the service computes', async () => {
      // Read afresh after the release above, beside the service's own answer.
      await o.page.goto(`${origin}/console/customers/${customer.id}`);
      const preview = await request(t.app).get(`/api/customers/${customer.id}/license`).set('Authorization', `Bearer ${t.adminToken}`);
      expect([preview.status, preview.body.claims.status]).toEqual([200, 'active']);
      const { held, limit } = preview.body.instances as { held: number; limit: number | null };
      await o.page.getByTestId('license-status').getByText(preview.body.claims.status, { exact: true }).waitFor();
      await o.page
        .locator('dd')
        .getByText(`${held} held${limit === null ? ', no limit' : ` of ${limit}`}`, { exact: true })
        .waitFor();
      await o.page.getByText('Claims a license issued now would carry').click();
      expect(await o.page.locator('pre').textContent()).toContain(`"sub": "${customer.id}"`);
    });

    test('when a plan is edited, then its name and features change, and its limits stay', async () => {
      const code = await createPlan(t, { name: 'Edit me' });
      await o.page.goto(`${origin}/console/plans`);
      await o.page.getByRole('button', { name: `Edit ${code}` }).click();
      await o.page.getByLabel(`Name of ${code}`).fill('Edited');
      await o.page.getByLabel(`Features of ${code}`).fill('sso, reports');
      await o.page.getByRole('button', { name: 'Save' }).click();
      // The form closes once the service has answered, and the list is read again.
      await o.page.getByRole('button', { name: `Edit ${code}` }).waitFor();
      // In this plan's row: the database may hold other plans with the same features.
      await o.page.getByRole('row').filter({ hasText: code }).getByRole('cell', { name: 'sso, reports', exact: true }).waitFor();
      const plan = await request(t.app).get(`/api/plans/${code}`).set('Authorization', `Bearer ${t.adminToken}`);
      expect([plan.body.plan.name, plan.body.plan.entitlements.features, plan.body.plan.entitlements.limits]).toEqual([
        'Edited',
        ['sso', 'reports'],
        { projects: 10, api_calls: null },
      ]);
      await o.page.goto(`${origin}/console/customers/${customer.id}`);
      await o.page.getByRole('heading', { name: 'API keys' }).waitFor();
    });

    test('when a form is submitted twice before the service answers, then it is sent once', async () => {
      await o.page.goto(`${origin}/console/plans`);
      const code = `twice-${Date.now().toString(36)}`;
      await o.page.getByLabel('Code (a-z, 0-9, - and _)').fill(code);
      await o.page.getByLabel('Name', { exact: true }).fill('Twice');
      let posts = 0;
      const count = (r: { method(): string; url(): string }) => void (r.method() === 'POST' && new URL(r.url()).pathname === '/api/plans' && (posts += 1));
      o.page.on('request', count);
      // Two submits in one task: the button is not yet disabled for the second (no render in between).
      await o.page.evaluate("(() => { const f = document.querySelector('input[name=code]').form; f.requestSubmit(); f.requestSubmit(); })()");
      await o.page.getByRole('row').filter({ hasText: code }).waitFor(); // the control: the plan was made
      o.page.off('request', count);
      expect(posts).toBe(1);
      expect(await o.page.getByRole('alert').count()).toBe(0); // no "already exists" from a second request
      const plan = await request(t.app).get(`/api/plans/${code}`).set('Authorization', `Bearer ${t.adminToken}`);
      expect(plan.body.plan.name).toBe('Twice');
      await o.page.goto(`${origin}/console/customers/${customer.id}`);
      await o.page.getByRole('heading', { name: 'API keys' }).waitFor();
    });

    test('when the plan is changed, then the subscription is on the new plan', async () => {
      await o.page.getByLabel('Change plan to').selectOption(planB);
      await o.page.getByRole('button', { name: 'Change plan' }).click();
      await o.page.locator(`td[data-plan="${planB}"]`).waitFor();
      const res = await request(t.app).get(`/api/customers/${customer.id}/subscriptions`).set('Authorization', `Bearer ${t.adminToken}`);
      expect(res.body.data[0].plan.code).toBe(planB);
      expect(o.problems).toEqual([]);
    });
  });

  test('when the admin signs out, then the sign-in page shows and the old cookie opens nothing, here or anywhere', async () => {
    const o = await open();
    try {
      await signIn(o.page);
      const [cookie] = await o.context.cookies();
      await o.page.getByRole('button', { name: 'Sign out' }).click();
      await o.page.waitForURL(/\/console\/sign-in$/);
      expect(await o.context.cookies()).toEqual([]);
      const stolen = await request(t.app)
        .get('/api/customers')
        .set({ Cookie: `${cookie!.name}=${cookie!.value}`, 'Sec-Fetch-Site': 'same-origin' });
      expect(stolen.status).toBe(401);
      await o.page.goto(`${origin}/console/customers`);
      await o.page.waitForURL(/\/console\/sign-in\?next=%2Fconsole%2Fcustomers$/);
    } finally {
      await o.context.close();
    }
  });

  test('when the session ends while the page is open, then the next action goes to sign-in and comes back after it', async () => {
    const o = await open();
    try {
      await signIn(o.page, '/console/plans');
      await o.page.getByRole('heading', { level: 1, name: 'Plans' }).waitFor();
      // Its data loaded while the session was alive.
      await o.page.getByRole('region', { name: 'Plans' }).waitFor();
      await o.page.waitForLoadState('networkidle');
      skewMs = 31 * 60_000; // more than CONSOLE_SESSION_IDLE without a request
      await o.page.getByRole('link', { name: 'Audit log' }).click();
      await o.page.waitForURL(/\/console\/sign-in\?next=%2Fconsole%2Faudit$/);
      skewMs = 0;
      await o.page.getByLabel('Admin token').fill(t.adminToken);
      await o.page.getByRole('button', { name: 'Sign in' }).click();
      await o.page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    } finally {
      await o.context.close();
    }
  });

  test("when a page of another site posts a form or calls fetch with the admin's cookie, then nothing acts", async () => {
    const email = `csrf-${Date.now()}@example.com`;
    const evil = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end(`<!doctype html><html lang="en"><title>x</title><body>
<form id="f" method="post" action="${origin}/api/customers"><input name="email" value="${email}"><input name="company_name" value="Evil"></form>
<script>
fetch('${origin}/api/customers', { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ email: 'x${email}', company_name: 'Evil' }) })
  .then((r) => { document.title = 'fetch ' + r.status; }, () => { document.title = 'fetch refused'; })
  .then(() => document.getElementById('f').submit());
</script></body></html>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const o = await open();
    try {
      await signIn(o.page);
      const seen: { url: string; status: number }[] = [];
      o.page.on('response', (r) => r.request().method() === 'POST' && seen.push({ url: r.url(), status: r.status() }));
      await o.page.goto(`http://${EVIL}:${(evil.address() as AddressInfo).port}/`);
      await o.page.waitForURL(`${origin}/api/customers`);
      // The form's post reached the service and was refused; the fetch's answer was refused too.
      const posted = seen.find((s) => s.url === `${origin}/api/customers`);
      expect(posted?.status).toBeGreaterThanOrEqual(400);
      expect(
        await t
          .db('customers')
          .whereIn('email', [email, `x${email}`])
          .count({ n: '*' }),
      ).toEqual([{ n: '0' }]);
      // Control: the same admin, from the console, can.
      await o.page.goto(`${origin}/console/customers`);
      await o.page.locator('input[name="new-email"]').fill(email);
      await o.page.locator('input[name="new-company"]').fill('Evil');
      await o.page.getByRole('button', { name: 'Create customer' }).click();
      await o.page.locator('input[data-secret]').waitFor();
      expect(await t.db('customers').where({ email }).count({ n: '*' })).toEqual([{ n: '1' }]);
    } finally {
      await o.context.close();
      await new Promise((resolve) => evil.close(resolve));
    }
  });

  test.each(WIDTHS)(
    'when every page is opened at %i pixels wide, then axe finds no serious or critical violation, and no policy violation or error',
    async (width) => {
      const customer = await createCustomer(t);
      await subscribe(t, { customer });
      // Usage over the last ten days, so the charts and their tables are on the pages axe reads.
      const events = Array.from({ length: 20 }, (_v, i) => ({
        metric: i % 2 ? 'api_calls' : 'storage_gb',
        quantity: 50 + ((i * 37) % 90),
        occurred_at: new Date(Date.now() - Math.floor(i / 2) * 86_400_000 - 60_000).toISOString(),
        idempotency_key: `axe-${width}-${i}`,
      }));
      expect((await request(t.app).post('/api/usage').set('X-API-Key', customer.apiKey).send({ events })).status).toBe(201);
      const o = await open(width);
      try {
        await signIn(o.page);
        const pages: [string, string][] = [
          ['/console', 'Overview'],
          ['/console/customers', 'Customers'],
          [`/console/customers/${customer.id}`, 'API keys'],
          ['/console/plans', 'Plans'],
          ['/console/forwarding', 'Usage forwarding to Stripe'],
          ['/console/webhooks', 'Stripe webhooks'],
          ['/console/events', 'Events out'],
          ['/console/audit', 'Audit log'],
        ];
        const found: string[] = [];
        for (const [p, heading] of pages) {
          await o.page.goto(`${origin}${p}`);
          await o.page.getByRole('heading', { name: heading }).first().waitFor();
          await o.page.waitForLoadState('networkidle');
          found.push(...(await axeViolations(o.page)).map((v) => `${p}: ${v}`));
          // Nothing wider than the window but the tables, which scroll inside their own region.
          const wide = await o.page.evaluate<string[]>(
            `[...document.querySelectorAll('body *')].filter((e) => (!e.closest('.table-wrap') || e.classList.contains('table-wrap')) && e.getBoundingClientRect().right > ${width} + 0.5).map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 5)`,
          );
          expect([p, await o.page.evaluate<number>('document.documentElement.scrollWidth'), wide]).toEqual([p, width, []]);
          if (SHOTS) {
            fs.mkdirSync(SHOTS, { recursive: true });
            const name = p === '/console' ? 'overview' : p.includes(customer.id) ? 'customer' : p.split('/').pop()!;
            await o.page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
          }
        }
        // The sign-in page too.
        await o.page.goto(`${origin}/console/sign-in`);
        await o.page.getByRole('heading', { name: 'Sign in to the billing console' }).waitFor();
        found.push(...(await axeViolations(o.page)).map((v) => `/console/sign-in: ${v}`));
        if (SHOTS) await o.page.screenshot({ path: path.join(SHOTS, `sign-in-${width}.png`) });
        expect(found).toEqual([]);
        expect(o.problems).toEqual([]);
      } finally {
        await o.context.close();
      }
    },
  );
});

/**
 * Names an admin sets are shown in the Dashboard and sent to Stripe: invisible format characters
 * (Unicode Cf) could make one name pass for another, so they are refused on create and on update.
 */
import request from 'supertest';
import { expectError } from '../helpers/envelope';
import { createCustomer, createPlan, planCode, uniqueEmail } from '../helpers/factories';
import { createTestApp, TestApp } from '../helpers/test-app';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await createTestApp();
  admin = { Authorization: `Bearer ${t.adminToken}` };
});
afterAll(() => t.close());

const INVISIBLE: [string, string][] = [
  ['U+202E right-to-left override', 'Acme\u202Eetal'],
  ['U+200B zero-width space', 'Ac\u200Bme'],
  ['U+FEFF at the start', '\uFEFFAcme'],
  ['U+FEFF at the end', 'Acme\uFEFF'],
  ['U+2060 word joiner', 'Ac\u2060me'],
  ['U+00AD soft hyphen', 'Ac\u00ADme'],
  ['U+2066 left-to-right isolate', '\u2066Acme\u2069'],
  ['an unpaired surrogate', 'Acme\uD800'],
];

function expectRefused(res: request.Response, field: string) {
  expectError(res, 422, 'VALIDATION_FAILED');
  expect(res.body.error.details).toContainEqual({ path: field, message: 'must not contain control or invisible formatting characters' });
}

describe.each(INVISIBLE)('when a name carries %s', (_label, name) => {
  test('then a customer is neither created nor renamed with it', async () => {
    const email = uniqueEmail('cf');
    expectRefused(await request(t.app).post('/api/customers').set(admin).send({ email, company_name: name }), 'company_name');
    expect(await t.db('customers').where({ email })).toHaveLength(0);
    const c = await createCustomer(t);
    expectRefused(await request(t.app).patch(`/api/customers/${c.id}`).set(admin).send({ company_name: name }), 'company_name');
    expect((await t.db('customers').where({ id: c.id }).first())!.company_name).toBe('Acme Ltd');
  });

  test('then no key is issued with it', async () => {
    const c = await createCustomer(t);
    expectRefused(await request(t.app).post(`/api/customers/${c.id}/keys`).set(admin).send({ name, keep_existing: true }), 'name');
    expect(await t.db('api_keys').where({ customer_id: c.id })).toHaveLength(1);
  });

  test('then a plan is neither created nor renamed with it', async () => {
    const code = planCode();
    const body = { code, name, entitlements: { features: [], limits: {} } };
    expectRefused(await request(t.app).post('/api/plans').set(admin).send(body), 'name');
    expect(await t.db('plans').where({ code })).toHaveLength(0);
    const existing = await createPlan(t);
    expectRefused(await request(t.app).patch(`/api/plans/${existing}`).set(admin).send({ name }), 'name');
    expect((await t.db('plans').where({ code: existing }).first())!.name).toBe('Pro');
  });
});

test('when names are in other scripts, with accents or symbols, then they are kept as given', async () => {
  for (const name of ['Müller & Söhne GmbH', '株式会社サンプル', 'Ελληνικά Α.Ε.', 'عربي للتجارة', 'Café ☕ 42']) {
    const res = await request(t.app)
      .post('/api/customers')
      .set(admin)
      .send({ email: uniqueEmail('intl'), company_name: name });
    expect([name, res.status]).toEqual([name, 201]);
    expect((await t.db('customers').where({ id: res.body.customer.id }).first())!.company_name).toBe(name);
  }
});

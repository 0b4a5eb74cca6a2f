/**
 * billing-admin usage import-bundle: a usage bundle file an air-gapped site sent, uploaded for its
 * customer; the answer (the signed receipt and a fresh license) printed as JSON or written to a file
 * only its owner can read; refusals with their exit codes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BillingClient } from '../../packages/client';
import { subscribe, type CreatedCustomer, createCustomer } from '../helpers/factories';
import { bundleEvents, Instance } from '../helpers/usage-bundles';
import { cli, startService, type Service } from './cli-harness';

let s: Service;
let env: Record<string, string>;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billing-bundles-cli-'));
beforeAll(async () => {
  s = await startService();
  env = { BILLING_API_URL: s.url, ADMIN_API_TOKEN: s.t.adminToken };
});
afterAll(async () => {
  await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** An activated instance (with its instance key) of a new subscribed customer. */
async function instance(): Promise<Instance> {
  const c: CreatedCustomer = await createCustomer(s.t);
  await subscribe(s.t, { customer: c });
  const i = new Instance(c);
  await i.activate(s.t);
  return i;
}

/** A bundle file, as the site's software writes it (a trailing newline). */
function bundleFile(name: string, jws: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${jws}\n`);
  return file;
}

const stored = async (customerId: string) => Number((await s.t.db('usage_events').where({ customer_id: customerId }).count<{ n: string }[]>({ n: '*' }))[0]!.n);

describe('billing-admin usage import-bundle', () => {
  test('when a bundle file is imported, then the answer is printed as JSON, what the receipt says goes to stderr, and the events are stored', async () => {
    const i = await instance();
    const file = bundleFile('site-a.bundle', await i.export(bundleEvents(3)));
    const r = await cli(['usage', 'import-bundle', i.customer.id, file], { env });
    expect(r.code).toBe(0);
    const answer = JSON.parse(r.stdout) as { receipt: string; receipt_claims: Record<string, unknown>; license: string; claims: { instance: string } };
    expect(answer.receipt_claims).toMatchObject({ customer_id: i.customer.id, fingerprint: i.fingerprint, seq: 1, events: 3, applied: 3, duplicates: 0 });
    expect(answer.claims.instance).toBe(i.fingerprint);
    expect(r.stderr).toMatch(/3 events, 3 applied \(0 late, billed by a true-up\), 0 already stored, 0 rejected/);
    expect(r.stderr).toMatch(/A fresh license for the instance comes with it, valid until \d{4}-/);
    expect(await stored(i.customer.id)).toBe(3);
    // From stdin too: the same bundle, the same receipt, nothing stored again.
    const again = await cli(['usage', 'import-bundle', i.customer.id, '-'], { env, stdin: fs.readFileSync(file, 'utf8') });
    expect(again.code).toBe(0);
    expect((JSON.parse(again.stdout) as { receipt: string }).receipt).toBe(answer.receipt);
    expect(await stored(i.customer.id)).toBe(3);
  });

  test('when --out is given, then the answer goes to a 0600 file, not to stdout; a file others can read is refused before anything is uploaded', async () => {
    const i = await instance();
    const file = bundleFile('site-b.bundle', await i.export(bundleEvents(2)));
    const open = path.join(dir, 'open-receipt.json');
    fs.writeFileSync(open, 'keep me');
    fs.chmodSync(open, 0o644);
    const refused = await cli(['usage', 'import-bundle', i.customer.id, file, '--out', open], { env });
    expect(refused.code).toBe(64);
    expect(refused.stderr).toMatch(/can be read by group or others \(mode 0644\)/);
    expect(fs.readFileSync(open, 'utf8')).toBe('keep me');
    expect(await stored(i.customer.id)).toBe(0);

    const out = path.join(dir, 'receipt.json');
    const old = process.umask(0o022);
    let r;
    try {
      r = await cli(['usage', 'import-bundle', i.customer.id, file, '--out', out], { env });
    } finally {
      process.umask(old);
    }
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`are in ${out} (readable by you only)`);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const answer = JSON.parse(fs.readFileSync(out, 'utf8')) as { receipt_claims: { applied: number }; license: string };
    expect(answer.receipt_claims.applied).toBe(2);
    expect(answer.license).toMatch(/^eyJ/);
    // Written again: replaced whole, still valid JSON.
    expect((await cli(['usage', 'import-bundle', i.customer.id, file, '--out', out], { env })).code).toBe(0);
    expect(JSON.parse(fs.readFileSync(out, 'utf8'))).toEqual(expect.objectContaining({ receipt: expect.any(String) }));
  });

  test('when the bundle is another customer’s, then it exits 2 with BUNDLE_WRONG_CUSTOMER; a file that cannot be read exits 64; an unknown customer 1', async () => {
    const i = await instance();
    const other = await instance();
    const file = bundleFile('site-c.bundle', await i.export(bundleEvents(1)));
    const wrong = await cli(['usage', 'import-bundle', other.customer.id, file], { env });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/422 BUNDLE_WRONG_CUSTOMER/);
    expect(wrong.stdout).toBe('');
    expect((await cli(['usage', 'import-bundle', i.customer.id, path.join(dir, 'nosuch.bundle')], { env })).code).toBe(64);
    const unknown = await cli(['usage', 'import-bundle', '01900000-0000-7000-8000-000000000000', file], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/404 NOT_FOUND/);
    // Control: for its own customer.
    expect((await cli(['usage', 'import-bundle', i.customer.id, file], { env })).code).toBe(0);
  });

  test('when a customer’s activations are listed after gaps, then each instance shows its highest seq and the seqs missing', async () => {
    const i = await instance();
    const one = await i.export(bundleEvents(1));
    await i.export(bundleEvents(1));
    const three = await i.export(bundleEvents(1));
    for (const [name, jws] of [
      ['one', one],
      ['three', three],
    ]) {
      expect((await cli(['usage', 'import-bundle', i.customer.id, bundleFile(`${i.fingerprint}-${name}`, jws!)], { env })).code).toBe(0);
    }
    const list = await cli(['activations', 'list', i.customer.id], { env });
    expect(list.stdout).toMatch(new RegExp(`BUNDLES\\n${i.fingerprint} .* seq 3, missing 2\\n`));
  });
});

describe('billing-admin licenses issue-offline --request', () => {
  test('when the activation request an instance wrote is given, then the offline activation carries its fingerprint, name and instance key; a request for another customer, or none at all, is a usage error (64) before anything is sent', async () => {
    const c = await createCustomer(s.t);
    await subscribe(s.t, { customer: c });
    const queueDir = path.join(dir, `queue-${c.id}`);
    const site = new BillingClient({ offline: true, queueDir, license: { fingerprint: `site-${c.id.slice(-12)}`, customerId: c.id } });
    const request = await site.activationRequest({ name: 'vault' });
    await site.close();
    const file = path.join(dir, `request-${c.id}.json`);
    fs.writeFileSync(file, JSON.stringify(request));
    const activations = () => s.t.db('license_activations').where({ customer_id: c.id });

    // Refused: the request is another customer's; no fingerprint at all; a fingerprint that is not the request's.
    const other = await createCustomer(s.t);
    const refusals = [
      ['licenses', 'issue-offline', other.id, '--request', file],
      ['licenses', 'issue-offline', c.id],
      ['licenses', 'issue-offline', c.id, '--request', file, '--fingerprint', 'another-instance'],
    ];
    for (const argv of refusals) {
      const r = await cli(argv, { env });
      expect([argv.join(' '), r.code, r.stdout]).toEqual([argv.join(' '), 64, '']);
    }
    expect(await activations()).toEqual([]);

    const r = await cli(['licenses', 'issue-offline', c.id, '--request', file], { env });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('.')).toHaveLength(3);
    const [row] = await activations();
    expect(row).toMatchObject({
      fingerprint: request.body.fingerprint,
      name: 'vault',
      instance_key_thumbprint: request.instance_key_thumbprint,
      instance_key: request.body.instance_key,
    });
  });
});

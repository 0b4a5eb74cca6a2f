#!/usr/bin/env node
/**
 * billing-client: usage bundles for air-gapped instances, from a shell (what the vendor's software
 * can also do through BillingClient). No dependency beyond the SDK's own: node:util's parseArgs.
 * Exit codes: 0 done; 1 refused or failed (the message says why); 2 the command line is wrong;
 * 3 import-receipt imported the receipt but brought no new license. Nothing secret is ever printed
 * (the API key is read from BILLING_API_KEY and only sent; the instance's private key never leaves its file).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BillingApiError, BillingNetworkError } from './api-error';
import { BillingClient } from './billing-client';
import { OfflineModeError, QueueLockedError, UnsafePathError } from './client-errors';
import { LicenseError } from './license-errors';
import { syncDir, writeNewPrivate } from './private-fs';
import { ReceiptError } from './receipt-errors';

const USAGE = `Usage: billing-client <command> [options]

Commands (the queue folder is the one the instance's software uses, with its instance key; stop the
software first, or have it call the SDK itself: one process per queue folder):

  activation-request --queue-dir <dir> --fingerprint <fp> [--name <name>] [--hostname <host>]
                     [--customer-id <id>] [--out <file>]
      What the vendor's admin needs to activate this instance offline (its fingerprint and public key), as JSON.

  export-usage --queue-dir <dir> --out <file> [--customer-id <id>] [--fingerprint <fp>] [--max-events <n>]
      Writes a signed usage bundle of every queued event not yet acknowledged. The customer id and the
      fingerprint are needed for the first export only (later ones use the same).

  upload-usage --bundle <file> --out <answer file>
      On a connected machine of the customer (BILLING_API_URL, BILLING_API_KEY): uploads the bundle and
      writes the service's answer (the receipt and a fresh license) to carry back.

  import-receipt --queue-dir <dir> --receipt <answer file> (--trusted-keys <jwks file> | --trusted-roots <jwks file>)
                 [--key-set <file>] [--license-dir <dir>] [--issuer <iss>] [--customer-id <id>] [--fingerprint <fp>]
      Verifies the receipt against the license keys built into the software, takes the acknowledged events
      off the queue, dead-letters the refused ones, and keeps the new license in --license-dir.

Options for every command: --json (the result as JSON on stdout), --help.
Exit codes: 0 done, 1 refused or failed, 2 wrong command line, 3 receipt imported but no new license.`;

class UsageError extends Error {}

const options = {
  'queue-dir': { type: 'string' },
  out: { type: 'string' },
  'customer-id': { type: 'string' },
  fingerprint: { type: 'string' },
  name: { type: 'string' },
  hostname: { type: 'string' },
  'max-events': { type: 'string' },
  bundle: { type: 'string' },
  receipt: { type: 'string' },
  'trusted-keys': { type: 'string' },
  'trusted-roots': { type: 'string' },
  'key-set': { type: 'string' },
  'license-dir': { type: 'string' },
  issuer: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options'];

const parse = (argv: string[]) => parseArgs({ args: argv, options, allowPositionals: true, strict: true });
type Values = ReturnType<typeof parse>['values'];

const ALLOWED: Record<string, (keyof typeof options)[]> = {
  'activation-request': ['queue-dir', 'fingerprint', 'name', 'hostname', 'customer-id', 'out'],
  'export-usage': ['queue-dir', 'out', 'customer-id', 'fingerprint', 'max-events'],
  'upload-usage': ['bundle', 'out'],
  'import-receipt': ['queue-dir', 'receipt', 'trusted-keys', 'trusted-roots', 'key-set', 'license-dir', 'issuer', 'customer-id', 'fingerprint'],
};

function need(v: Values, name: keyof typeof options): string {
  const value = v[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

/** A file written complete or not at all, beside its final name (not necessarily in a private folder: a USB stick, say). */
async function writeOut(file: string, content: string): Promise<void> {
  const target = path.resolve(file);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await writeNewPrivate(tmp, content, 0o600);
  try {
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(path.dirname(target));
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

async function run(command: string, v: Values, io: Io): Promise<number> {
  const say = (text: string) => {
    if (!v.json) io.out(`${text}\n`);
  };
  const json = (value: unknown) => {
    if (v.json) io.out(`${JSON.stringify(value, null, 2)}\n`);
  };

  if (command === 'upload-usage') {
    const bundleFile = need(v, 'bundle');
    const out = need(v, 'out');
    if (!process.env.BILLING_API_URL || !process.env.BILLING_API_KEY) {
      throw new UsageError('upload-usage needs BILLING_API_URL and BILLING_API_KEY (the customer API key of a connected machine) in the environment');
    }
    const bundle = (await fsp.readFile(bundleFile, 'utf8')).trim();
    const client = new BillingClient({ timeoutMs: 120_000 });
    const answer = await client.uploadUsageBundle(bundle);
    await writeOut(out, JSON.stringify(answer) + '\n');
    const c = answer.receipt_claims;
    json({ ...c, answer_file: path.resolve(out), license: answer.license !== null, license_error: answer.license_error });
    say(
      `Uploaded bundle seq ${c.seq} (${c.bundle_id}) of instance ${c.fingerprint}: ${c.applied ?? '?'} applied, ${c.duplicates ?? '?'} already stored, ` +
        `${c.rejected.length} rejected, ${c.late ?? 0} late (as the service says).`,
    );
    if (c.missing_seq.length > 0) say(`The service never received bundle(s) ${c.missing_seq.join(', ')} of this instance: upload those files too.`);
    if (answer.license_error) say(`No new license: ${answer.license_error.code}: ${answer.license_error.message}`);
    say(`The answer is in ${path.resolve(out)}: carry it back to the instance (billing-client import-receipt).`);
    return 0;
  }

  const queueDir = need(v, 'queue-dir');
  if (command === 'activation-request') {
    const fingerprint = need(v, 'fingerprint');
    const client = new BillingClient({ offline: true, queueDir, license: { fingerprint } });
    try {
      const request = await client.activationRequest({ fingerprint, name: v.name, hostname: v.hostname, customerId: v['customer-id'] });
      const text = JSON.stringify(request, null, 2) + '\n';
      if (v.out) {
        await writeOut(v.out, text);
        json({ ...request, file: path.resolve(v.out) });
        say(
          `The activation request of instance ${fingerprint} (key ${request.instance_key_thumbprint}) is in ${path.resolve(v.out)}: ` +
            'carry it to the vendor; an admin posts its body to POST /api/customers/<customer id>/licenses and sends back the license.',
        );
      } else {
        io.out(text);
      }
      return 0;
    } finally {
      await client.close();
    }
  }

  if (command === 'export-usage') {
    const out = need(v, 'out');
    let maxEvents: number | undefined;
    if (v['max-events'] !== undefined) {
      maxEvents = Number(v['max-events']);
      if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) throw new UsageError('--max-events must be a whole number >= 1');
    }
    const client = new BillingClient({ offline: true, queueDir, license: { customerId: v['customer-id'], fingerprint: v.fingerprint } });
    try {
      const r = await client.exportUsage(out, maxEvents !== undefined ? { maxEvents } : {});
      json(r);
      say(`Wrote usage bundle seq ${r.seq} (${r.events} events) to ${r.file}.`);
      if (r.remaining > 0) say(`${r.remaining} more queued events did not fit: export again for the next bundle.`);
      say('Carry it to a connected machine (billing-client upload-usage) or send it to the vendor; import the answer with billing-client import-receipt.');
      return 0;
    } finally {
      await client.close();
    }
  }

  if (command === 'import-receipt') {
    const receipt = need(v, 'receipt');
    if (!v['trusted-keys'] && !v['trusted-roots'])
      throw new UsageError('import-receipt needs --trusted-keys or --trusted-roots (the license keys built into the software)');
    if (!v['license-dir'])
      io.err('Warning: without --license-dir the new license is verified but not kept, and the clock is not checked against a license mark.\n');
    const keySet = v['key-set'] ? (await fsp.readFile(v['key-set'], 'utf8')).trim() : undefined;
    const client = new BillingClient({
      offline: true,
      queueDir,
      license: {
        trustedKeys: v['trusted-keys'],
        trustedRoots: v['trusted-roots'],
        keySet,
        dir: v['license-dir'],
        issuer: v.issuer,
        customerId: v['customer-id'],
        fingerprint: v.fingerprint,
      },
    });
    try {
      const r = await client.importReceipt(receipt);
      const license = r.license ? { decision: r.license.decision, expires_at: r.license.expiresAt.toISOString(), jti: r.license.claims.jti } : null;
      json({ ...r, license });
      say(`Imported the receipt of bundle seq ${r.seq} (${r.bundleId}): ${r.acknowledged} events acknowledged, ${r.deadLettered} dead-lettered.`);
      if (r.deadLettered > 0) say(`Refused events are in ${path.join(queueDir, 'dead-letter.jsonl')}, each with the service's reason.`);
      if (r.missingSeq.length > 0)
        say(`The service never received bundle(s) ${r.missingSeq.join(', ')}: their events are in later bundles if they were still queued.`);
      if (license) say(`New license kept: ${license.decision}, valid until ${license.expires_at}.`);
      if (r.licenseError) {
        io.err(
          `No new license (${r.licenseError.source === 'service' ? 'the service could not issue one' : 'it did not verify here'}): ${r.licenseError.code}: ${r.licenseError.message}\n`,
        );
        return 3;
      }
      return 0;
    } finally {
      await client.close();
    }
  }
  throw new UsageError(`unknown command ${command}`);
}

/** The message of a failure, for a person: its code when it has one; never a secret (none is in any of these). */
function describe(err: unknown): string {
  if (err instanceof ReceiptError || err instanceof LicenseError) return `${err.name} ${err.code}: ${err.message}`;
  if (err instanceof BillingApiError)
    return `The service answered ${err.status} ${err.code}: ${err.message}${err.requestId ? ` (request ${err.requestId})` : ''}`;
  if (err instanceof BillingNetworkError) return `${err.message}: try again later`;
  if (err instanceof QueueLockedError) {
    return `${err.message}. Stop the instance's software first, or have it export and import through the SDK (BillingClient.exportUsage / importReceipt).`;
  }
  if (err instanceof UnsafePathError || err instanceof OfflineModeError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

export async function main(argv: string[], io: Io): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === 'help') {
    io.out(`${USAGE}\n`);
    return 0;
  }
  if (command === undefined) {
    io.err(`${USAGE}\n`);
    return 2;
  }
  if (positionals.length > 1 || !(command in ALLOWED)) {
    io.err(`unknown command ${positionals.join(' ')}\n\n${USAGE}\n`);
    return 2;
  }
  const extra = (Object.keys(values) as (keyof typeof options)[]).filter((k) => k !== 'json' && k !== 'help' && !ALLOWED[command]!.includes(k));
  if (extra.length > 0) {
    io.err(`${command} does not take ${extra.map((k) => `--${k}`).join(', ')}\n\n${USAGE}\n`);
    return 2;
  }
  try {
    return await run(command, values, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    io.err(`${describe(err)}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) }).then((code) => {
    process.exitCode = code;
  });
}

/**
 * The license keys, for the vendor (docs/LICENSES.md):
 *   npm run license-key                      a new signing key (private JWK on stdout) and its public key to embed
 *   npm run license-key -- root              a new root key (private JWK on stdout: keep it offline) and the public key to embed
 *   npm run license-key -- public [--keys F] the public key set of the signing keys (F, else LICENSE_SIGNING_KEYS[_FILE]):
 *                                            what the software embeds as trustedKeys
 *   npm run license-key -- sign-key-set --root R [--keys F] [--days 365] [--issuer billing-service]
 *                                            the key set signed by the root (a compact JWS): LICENSE_KEY_SET
 * Nothing is stored: keys exist only in this output. Private keys go to stdout only, so they can be
 * redirected into a file (umask 077) and never land in a terminal's scrollback by accident of stderr.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { publicKeysOf, signKeySet } from '../modules/licenses/key-set';
import { generateSigningKey, parseSigningKeys, publicJwk, type PrivateSigningJwk, type PublicSigningJwk } from '../modules/licenses/signing-keys';

const out = (text: string) => process.stdout.write(`${text}\n`);
const note = (text: string) => process.stderr.write(`${text}\n`);
const privateJwk = (k: PrivateSigningJwk) => JSON.stringify({ kty: k.kty, crv: k.crv, d: k.d, x: k.x, kid: k.kid });
const jwks = (keys: PublicSigningJwk[]) => JSON.stringify({ keys });

/** Private keys (any LICENSE_SIGNING_KEYS form) or a public JWKS {keys: [...]}: the public keys either way. */
export function publicKeysFrom(text: string): PublicSigningJwk[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const parsed = JSON.parse(trimmed) as { keys?: unknown };
    if (Array.isArray(parsed.keys)) return publicKeysOf(parsed.keys, 'key');
  }
  return parseSigningKeys(trimmed).map(publicJwk);
}

function configuredKeys(file: string | undefined): string {
  if (file) return fs.readFileSync(file, 'utf8');
  if (process.env.LICENSE_SIGNING_KEYS_FILE) return fs.readFileSync(process.env.LICENSE_SIGNING_KEYS_FILE, 'utf8');
  if (process.env.LICENSE_SIGNING_KEYS) return process.env.LICENSE_SIGNING_KEYS;
  throw new Error('no keys: give --keys <file>, or set LICENSE_SIGNING_KEYS or LICENSE_SIGNING_KEYS_FILE');
}

const positive = (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 3650) throw new InvalidArgumentError('a number of days, 1-3650');
  return Number(v);
};

export function licenseKeyCli(): Command {
  const program = new Command('license-key').description('License signing keys, the root key and the signed key set').showHelpAfterError();

  program
    .command('new', { isDefault: true })
    .description('a new signing key: the private JWK on stdout, for LICENSE_SIGNING_KEYS')
    .action(() => {
      const key = generateSigningKey();
      out(privateJwk(key));
      note(
        `\nA new license signing key (kid ${key.kid}). It is a secret: keep it where your other secrets are.\n\n` +
          `The software you ship verifies licenses only against keys built into it. Embed either this public key\n` +
          `(license.trustedKeys):\n  ${jwks([publicJwk(key)])}\n` +
          `or your root key (license.trustedRoots) and publish a key set listing this key, signed by the root\n` +
          `(npm run license-key -- sign-key-set): then a new key needs no new software.\n\n` +
          `First key:   LICENSE_SIGNING_KEYS='<the JSON above>'  (or the file LICENSE_SIGNING_KEYS_FILE names)\n` +
          `Rotation:    see docs/LICENSES.md, "Rotation".`,
      );
    });

  program
    .command('root')
    .description('a new root key: the private JWK on stdout (keep it offline), the public key to embed on stderr')
    .action(() => {
      const key = generateSigningKey();
      out(privateJwk(key));
      note(
        `\nA new license ROOT key (kid ${key.kid}). Keep it offline (a vault, a hardware token): whoever holds it\n` +
          `can give every instance any license. It never goes into the service's configuration.\n\n` +
          `Embed its public key in the software you ship (license.trustedRoots, or a bundled file):\n  ${jwks([publicJwk(key)])}\n\n` +
          `Sign the key set with it: npm run license-key -- sign-key-set --root <this key's file> --keys <keys file>`,
      );
    });

  program
    .command('public')
    .description('the public key set of the signing keys (--keys file, else LICENSE_SIGNING_KEYS[_FILE]): what the software embeds')
    .option('--keys <file>', 'private signing keys (any LICENSE_SIGNING_KEYS form)')
    .action((o: { keys?: string }) => {
      out(jwks(publicKeysFrom(configuredKeys(o.keys))));
    });

  program
    .command('sign-key-set')
    .description('the license key set signed by the root: the value of LICENSE_KEY_SET (run it where the root is kept)')
    .requiredOption('--root <file>', 'the root private key (the JSON `license-key root` printed)')
    .option('--keys <file>', 'the keys to list: private keys, or the public key set `license-key public` printed (else LICENSE_SIGNING_KEYS[_FILE])')
    .option('--days <n>', 'how long instances accept this key set (1-3650)', positive, 365)
    .option('--issuer <iss>', 'LICENSE_ISSUER', process.env.LICENSE_ISSUER ?? 'billing-service')
    .action((o: { root: string; keys?: string; days: number; issuer: string }) => {
      const [root, ...extra] = parseSigningKeys(fs.readFileSync(o.root, 'utf8'));
      if (!root || extra.length) throw new Error('--root must hold exactly one private key');
      const keys = publicKeysFrom(configuredKeys(o.keys));
      if (keys.some((k) => k.kid === root.kid || k.x === root.x)) throw new Error('the root key must not be one of the signing keys');
      out(signKeySet(root, keys, { issuer: o.issuer, iat: Math.floor(Date.now() / 1000), days: o.days }));
      note(`\nSigned by root ${root.kid}, listing ${keys.map((k) => k.kid).join(', ')}, valid ${o.days} days. Set it as LICENSE_KEY_SET.`);
    });

  return program;
}

if (require.main === module) {
  try {
    licenseKeyCli().parse();
  } catch (err) {
    note(`license-key: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

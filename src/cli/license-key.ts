/**
 * Prints a new Ed25519 license signing key (a private JWK with its kid) and how to put it in use.
 * Nothing is stored: the key exists only in this output.
 */
import { generateSigningKey } from '../modules/licenses/signing-keys';

const key = generateSigningKey();
const jwk = JSON.stringify({ kty: key.kty, crv: key.crv, d: key.d, x: key.x, kid: key.kid });
process.stdout.write(`${jwk}\n`);
process.stderr.write(
  `\nA new license signing key (kid ${key.kid}). It is a secret: keep it where your other secrets are.\n\n` +
    `First key:   LICENSE_SIGNING_KEYS='${'<the JSON above>'}'  (or the file LICENSE_SIGNING_KEYS_FILE names)\n` +
    `Rotation:    1. add it second: LICENSE_SIGNING_KEYS='[<current key>, <this key>]' and deploy (it is published, not used);\n` +
    `             2. once every instance has fetched the JWKS (5 minutes of cache), move it first: it signs from then on;\n` +
    `             3. remove the old key after the longest LICENSE_TTL (and offline license) it signed has run out.\n` +
    `See docs/LICENSES.md.\n`,
);

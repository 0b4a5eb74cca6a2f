import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../../config';

/**
 * Endpoint signing secrets at rest: AES-256-GCM under WEBHOOK_SECRETS_KEY, so a database dump alone
 * reveals none of them. `v1.<key id>.<iv>.<ciphertext and tag>` (base64url); the key id (the first
 * 8 bytes of the key's SHA-256) says which of the configured keys decrypts it, so keys can rotate.
 * The endpoint's id is bound in as associated data: a ciphertext copied onto another endpoint's row
 * does not decrypt.
 */
export interface SecretBox {
  seal(plaintext: string, endpointId: string): string;
  open(sealed: string, endpointId: string): string;
}

const keyId = (key: Buffer) => createHash('sha256').update(key).digest('hex').slice(0, 16);

export function createSecretBox(keys: readonly Buffer[]): SecretBox {
  if (keys.length === 0) throw new Error('a secret box needs at least one key');
  const byId = new Map(keys.map((k) => [keyId(k), k]));
  const current = keys[0]!;
  const currentId = keyId(current);
  return {
    seal(plaintext, endpointId) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current, iv);
      cipher.setAAD(Buffer.from(endpointId));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `v1.${currentId}.${iv.toString('base64url')}.${body.toString('base64url')}`;
    },
    open(sealed, endpointId) {
      const [version, id, iv, body] = sealed.split('.');
      const key = id ? byId.get(id) : undefined;
      if (version !== 'v1' || !key || !iv || !body) throw new Error('an endpoint secret is sealed with a key WEBHOOK_SECRETS_KEY does not hold');
      const data = Buffer.from(body, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(endpointId));
      decipher.setAuthTag(data.subarray(data.length - 16));
      return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString('utf8');
    },
  };
}

/**
 * The keys to use. Production: WEBHOOK_SECRETS_KEY (config refuses to start without it). Tests: one
 * in memory. Development: one generated once and kept in DATA_DIR/webhook-secrets-key (0600).
 */
export function webhookSecretsKeysFor(config: Config, logger: Logger): readonly Buffer[] {
  if (config.webhooks.secretsKeys.length > 0) return config.webhooks.secretsKeys;
  if (config.env === 'production') throw new Error('WEBHOOK_SECRETS_KEY is required in production');
  if (config.env === 'test') return [randomBytes(32)];
  const file = path.resolve(config.dataDir, 'webhook-secrets-key');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Written whole under another name, then linked in place: two starts at once never read half a key.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    try {
      fs.linkSync(tmp, file);
      logger.info({ file }, 'no WEBHOOK_SECRETS_KEY set: generated one for development');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      fs.unlinkSync(tmp);
    }
  }
  const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte key in base64`);
  return [key];
}

import { z } from 'zod';
import { checkTokenStrength } from './lib/token-strength';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL');

// express `trust proxy`: false, true, a hop count, or a comma-separated list of addresses/subnets.
const trustProxy = z
  .string()
  .regex(/^[\w.:/, -]+$/, 'must be false, true, a hop count, or addresses/subnets')
  .transform((v): boolean | number | string[] => {
    if (v === 'false' || v === '0') return false;
    if (v === 'true') return true;
    if (/^\d+$/.test(v)) return Number(v);
    return v.split(',').map((s) => s.trim()).filter(Boolean);
  });

const schema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: z.string().min(1).default('./.data'),
  EMBEDDED_PG_PORT: int(0, 65535).default(0),
  DB_POOL_MAX: int(1, 200).default(10),
  MIGRATE_ON_START: bool.default(true),
  ADMIN_API_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v ?? '').split(',').map((t) => t.trim()).filter(Boolean)),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: bool.optional(),
  BCRYPT_COST: int(4, 15).default(12),
  JSON_BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb, 1mb or 2048b')
    .default('100kb'),
  API_KEY_CACHE_TTL_SECONDS: int(0, 3600).default(60),
  API_KEY_CACHE_MAX_ENTRIES: int(0, 1_000_000).default(10_000),
  MAX_ACTIVE_KEYS_PER_CUSTOMER: int(1, 50).default(5),
  LAST_USED_FLUSH_SECONDS: int(1, 3600).default(30),
  TRUST_PROXY: trustProxy.default(false),
  SHUTDOWN_TIMEOUT_SECONDS: int(1, 300).default(10),
});

type Parsed = z.infer<typeof schema>;

export interface Config {
  readonly env: Parsed['NODE_ENV'];
  readonly host: string;
  readonly port: number;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly dbPoolMax: number;
  readonly migrateOnStart: boolean;
  /** Every accepted admin token; several at once so one can be rotated without downtime. */
  readonly adminTokens: readonly string[];
  readonly logLevel: Parsed['LOG_LEVEL'];
  readonly logPretty: boolean;
  readonly bcryptCost: number;
  readonly jsonBodyLimit: string;
  readonly apiKeyCacheTtlSeconds: number;
  readonly apiKeyCacheMaxEntries: number;
  readonly maxActiveKeysPerCustomer: number;
  readonly lastUsedFlushSeconds: number;
  readonly trustProxy: boolean | number | string[];
  readonly shutdownTimeoutSeconds: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Empty values (`KEY=` copied from .env.example) mean "not set". */
function withoutEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') out[k] = v.trim();
  return out;
}

function productionProblems(c: Parsed): string[] {
  if (c.NODE_ENV !== 'production') return [];
  const problems: string[] = [];
  if (!c.DATABASE_URL) problems.push('DATABASE_URL: required when NODE_ENV=production');
  if (c.ADMIN_API_TOKEN.length === 0) {
    problems.push('ADMIN_API_TOKEN: required when NODE_ENV=production (generate one: openssl rand -hex 32)');
  }
  c.ADMIN_API_TOKEN.forEach((token, i) => {
    const weakness = checkTokenStrength(token);
    if (weakness) {
      const which = c.ADMIN_API_TOKEN.length > 1 ? ` (token ${i + 1})` : '';
      problems.push(`ADMIN_API_TOKEN${which}: ${weakness} (generate one: openssl rand -hex 32)`);
    }
  });
  return problems;
}

/** Parses and validates the environment once. Never echoes a value: settings may be secrets. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = schema.safeParse(withoutEmpty(env));
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const c = result.data;
  const problems = productionProblems(c);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    env: c.NODE_ENV,
    host: c.HOST,
    port: c.PORT,
    databaseUrl: c.DATABASE_URL,
    dataDir: c.DATA_DIR,
    embeddedPgPort: c.EMBEDDED_PG_PORT,
    dbPoolMax: c.DB_POOL_MAX,
    migrateOnStart: c.MIGRATE_ON_START,
    adminTokens: Object.freeze([...c.ADMIN_API_TOKEN]),
    logLevel: c.LOG_LEVEL,
    logPretty: c.LOG_PRETTY ?? c.NODE_ENV === 'development',
    bcryptCost: c.BCRYPT_COST,
    jsonBodyLimit: c.JSON_BODY_LIMIT.toLowerCase(),
    apiKeyCacheTtlSeconds: c.API_KEY_CACHE_TTL_SECONDS,
    apiKeyCacheMaxEntries: c.API_KEY_CACHE_MAX_ENTRIES,
    maxActiveKeysPerCustomer: c.MAX_ACTIVE_KEYS_PER_CUSTOMER,
    lastUsedFlushSeconds: c.LAST_USED_FLUSH_SECONDS,
    trustProxy: c.TRUST_PROXY,
    shutdownTimeoutSeconds: c.SHUTDOWN_TIMEOUT_SECONDS,
  });
}

import type { Logger } from 'pino';
import { createClient } from 'redis';
import type { RedisCommander } from './middleware/rate-limits';

/**
 * The Redis connection for shared rate limits. Commands fail at once while it is down (no
 * offline queue), so a limiter falls back to memory instead of making requests wait; the
 * client reconnects in the background.
 */
export function connectRedis(url: string, logger: Logger): RedisCommander & { ready: Promise<boolean>; close(): Promise<void> } {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: 2000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 5000) },
  });
  let down = false;
  client.on('error', (err: unknown) => {
    if (!down) logger.warn({ err }, 'Redis connection error; retrying');
    down = true;
  });
  client.on('ready', () => {
    if (down) logger.info('Redis connection back');
    down = false;
  });
  const ready = client.connect().then(
    () => true,
    (err: unknown) => {
      logger.warn({ err }, 'Redis not reachable at startup; retrying in the background');
      return false;
    },
  );
  return {
    /** Settles once the first connection attempt has: true when connected. */
    ready: Promise.race([ready, new Promise<boolean>((r) => setTimeout(() => r(false), 3000).unref())]),
    sendCommand: (args: string[]) => client.sendCommand(args),
    async close() {
      await client.close().catch(() => undefined);
    },
  };
}

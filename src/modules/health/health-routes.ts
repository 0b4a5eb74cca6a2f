import type { Knex } from 'knex';
import { pendingMigrations } from '../../db/migration-source';
import { AppError } from '../../errors/app-error';
import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';

export function healthRoutes(db: Knex, startedAt: number) {
  return [
    defineRoute({
      method: 'get',
      path: '/health',
      auth: 'public',
      summary: 'Liveness: the process answers',
      response: responses.health,
      handle(_input, res) {
        res.json({ status: 'ok', uptime_seconds: Math.round((Date.now() - startedAt) / 1000) });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/ready',
      auth: 'public',
      summary: 'Readiness: the database answers and every migration is applied',
      response: responses.ready,
      async handle(_input, res) {
        let pending: string[];
        try {
          await db.raw('select 1');
          pending = await pendingMigrations(db);
        } catch {
          throw new AppError('SERVICE_UNAVAILABLE', 'Not ready: the database is unreachable', { database: 'unreachable' });
        }
        if (pending.length > 0) {
          throw new AppError('SERVICE_UNAVAILABLE', 'Not ready: migrations are pending', { database: 'ok', pending_migrations: pending });
        }
        res.json({ status: 'ready', checks: { database: 'ok', migrations: 'current' } });
      },
    }),
  ];
}

import type { ReadinessCheck } from './readiness-check';
import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';

export function healthRoutes(readiness: ReadinessCheck, startedAt: number) {
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
      summary: 'Readiness: the database answers and every migration is applied (an answer at most a second old)',
      response: responses.ready,
      async handle(_input, res) {
        await readiness.assertReady();
        res.json({ status: 'ready', checks: { database: 'ok', migrations: 'current' } });
      },
    }),
  ];
}

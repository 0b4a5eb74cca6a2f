import type { ReadinessCheck } from './readiness-check';
import { json, responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';

export function healthRoutes(readiness: ReadinessCheck, startedAt: number) {
  return [
    defineRoute({
      method: 'get',
      path: '/health',
      auth: 'public',
      summary: 'Liveness: the process answers',
      responses: { 200: json(responses.health, 'The process is alive') },
    }).handle(() => ({ status: 200, body: { status: 'ok', uptime_seconds: Math.round((Date.now() - startedAt) / 1000) } })),
    defineRoute({
      method: 'get',
      path: '/ready',
      auth: 'public',
      summary: 'Readiness: the database answers and every migration is applied (an answer at most a second old)',
      responses: { 200: json(responses.ready, 'Ready for traffic') },
      errors: ['SERVICE_UNAVAILABLE'],
    }).handle(async () => {
      await readiness.assertReady();
      return { status: 200, body: { status: 'ready', checks: { database: 'ok', migrations: 'current' } } };
    }),
  ];
}

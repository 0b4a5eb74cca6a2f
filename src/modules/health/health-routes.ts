import type { ReadinessCheck } from './readiness-check';
import { json } from '../../http/response-schemas';
import { healthResponse, readyResponse } from './health-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';

export function healthRouteSpecs() {
  return {
    getHealth: defineRoute({
      method: 'get',
      path: '/health',
      auth: 'public',
      summary: 'Liveness: the process answers',
      responses: { 200: json(healthResponse, 'The process is alive') },
    }),
    getReady: defineRoute({
      method: 'get',
      path: '/ready',
      auth: 'public',
      summary: 'Readiness: the database answers and every migration is applied (an answer at most a second old)',
      responses: { 200: json(readyResponse, 'Ready for traffic') },
      errors: ['SERVICE_UNAVAILABLE'],
    }),
  };
}

export function healthHandlers(readiness: ReadinessCheck, startedAt: number): HandlersFor<ReturnType<typeof healthRouteSpecs>> {
  return {
    getHealth: () => ({ status: 200, body: { status: 'ok', uptime_seconds: Math.round((Date.now() - startedAt) / 1000) } }),
    getReady: async () => {
      await readiness.assertReady();
      return { status: 200, body: { status: 'ready', checks: { database: 'ok', migrations: 'current' } } };
    },
  };
}

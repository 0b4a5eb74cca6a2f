import express, { RequestHandler } from 'express';
import { AppError } from '../errors/app-error';

const hasBody = (req: Parameters<RequestHandler>[0]) => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/**
 * JSON bodies only, within the size limit. Mounted per route after authentication,
 * so an unauthenticated caller's body is never read.
 */
export function jsonBody(limit: string): RequestHandler[] {
  return [
    (req, _res, next) => {
      if (hasBody(req) && !req.is('application/json')) {
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Request body must be application/json');
      }
      next();
    },
    express.json({ limit, strict: true, type: 'application/json' }),
  ];
}

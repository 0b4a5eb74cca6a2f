import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';

/** An incoming X-Request-Id is kept only if it is short and plain; anything else is replaced. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(): RequestHandler {
  return (req, res, next) => {
    const incoming = req.get('x-request-id');
    const id = incoming && SANE_ID.test(incoming) ? incoming : randomUUID();
    req.id = id;
    res.setHeader('X-Request-Id', id);
    next();
  };
}

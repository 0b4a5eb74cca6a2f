import type { Response } from 'express';

/**
 * A JSON answer written directly: the same bytes and headers express's res.json gives (Content-Type
 * with charset, Content-Length) without its content-type lookups and charset re-parsing on the way.
 * HEAD requests get the headers only (node leaves the body out).
 */
export function sendJson(res: Response, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

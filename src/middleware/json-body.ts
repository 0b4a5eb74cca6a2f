import express, { type Request, type RequestHandler } from 'express';
import { AppError } from '../errors/app-error';

const hasBody = (req: Request) => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/** A size as the settings write it (100kb, 1mb, 2048b), in bytes (k = 1024, as express.json reads it). */
function byteLimit(limit: string): number {
  const m = /^(\d+)(b|kb|mb)$/i.exec(limit);
  if (!m) throw new Error(`not a body size: ${limit}`);
  return Number(m[1]) * { b: 1, kb: 1024, mb: 1024 * 1024 }[m[2]!.toLowerCase() as 'b' | 'kb' | 'mb'];
}

/** The body is JSON, with no charset or UTF-8 (the media type and charset are case-insensitive). */
const PLAIN_JSON = /^application\/json\s*(;\s*charset="?utf-8"?\s*)?$/i;

/** As body-parser's strict mode: a JSON body is an object or an array. */
const STRICT_START = /^[ \t\n\r]*[{[]/;

/**
 * JSON bodies only, within the size limit. Mounted per route after authentication, so an
 * unauthenticated caller's body is never read.
 *
 * The common request (a plain `application/json` body of a declared length within the limit, not
 * compressed) is read here: the chunks joined once and parsed, as express.json would parse it. Any
 * other (chunked, compressed, another charset, too large, or an unusual Content-Type) goes to
 * express.json itself, which answers exactly as before: its type checks, charset decoding,
 * decompression and size errors are not written twice. What it saves, measured, and when to
 * delete it: docs/decisions/json-body.md.
 */
export function jsonBody(limit: string): RequestHandler {
  const max = byteLimit(limit);
  const general = express.json({ limit, strict: true, type: 'application/json' });
  return (req, res, next) => {
    if (!hasBody(req)) return next();
    const type = req.headers['content-type'];
    const length = Number(req.headers['content-length']);
    const plain =
      type !== undefined &&
      PLAIN_JSON.test(type) &&
      req.headers['transfer-encoding'] === undefined &&
      req.headers['content-encoding'] === undefined &&
      length <= max;
    if (!plain) {
      if (!req.is('application/json')) throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Request body must be application/json');
      return general(req, res, next);
    }
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = () => {
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
      req.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      chunks.push(chunk);
    };
    const onError = (err: Error) => {
      cleanup();
      next(Object.assign(err, { type: 'request.aborted' }));
    };
    // A client that hangs up mid-body: nothing to parse, and nobody left to answer.
    const onClose = () => {
      if (req.complete) return;
      cleanup();
      next(Object.assign(new Error('request aborted'), { type: 'request.aborted' }));
    };
    const onEnd = () => {
      cleanup();
      if (received !== length) return next(Object.assign(new Error('request size did not match content length'), { type: 'request.size.invalid' }));
      let text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received)).toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      try {
        if (!STRICT_START.test(text)) throw new SyntaxError('a JSON body must be an object or an array');
        req.body = JSON.parse(text) as unknown;
      } catch (err) {
        return next(Object.assign(err as Error, { type: 'entity.parse.failed' }));
      }
      next();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  };
}

import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';

/**
 * Requests node's HTTP parser refuses (a malformed request line or header, headers too large, a
 * request that times out before its headers are read) never reach express: without this, node
 * answers 400 and nothing is logged or counted. Each is logged at warn (the parser's code, the
 * client's address: no bytes of the request) and counted by code; the client gets node's answer.
 */
export function observeClientErrors(server: http.Server, logger: Logger, counter: Counter<'code'>): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const code = err.code ?? 'UNKNOWN';
    // A connection reset by the client is its own business, not a refusal.
    if (code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    counter.inc({ code });
    logger.warn({ code, ip: socket.remoteAddress ?? null, reason: err.message }, 'HTTP parser refused a request');
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
}

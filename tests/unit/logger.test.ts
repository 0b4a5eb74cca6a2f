import { Writable } from 'node:stream';
import { createLogger } from '../../src/logger';

function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: createLogger({ logLevel: 'trace', logPretty: false }, sink), text: () => lines.join('') };
}

describe('log redaction', () => {
  test('when request headers carrying credentials are logged, then each credential is replaced', () => {
    const { logger, text } = capture();
    logger.info({
      req: {
        headers: {
          authorization: 'Bearer admin-secret-token',
          'x-api-key': 'cust_abc_secretpart',
          'stripe-signature': 't=1,v1=deadbeef',
          cookie: 'session=s3cr3t',
          'user-agent': 'curl/8',
        },
      },
    });
    const out = text();
    for (const secret of ['admin-secret-token', 'secretpart', 'deadbeef', 's3cr3t']) expect(out).not.toContain(secret);
    expect(out.match(/\[Redacted\]/g)).toHaveLength(4);
    expect(out).toContain('curl/8');
  });

  test('when an object has password, secret, token or api_key fields, then their values are replaced', () => {
    const { logger, text } = capture();
    logger.warn({ stripe: { secret: 'sk_live_x1' }, body: { api_key: 'cust_y2', password: 'p3', token: 't4' } });
    const out = text();
    for (const v of ['sk_live_x1', 'cust_y2', '"p3"', '"t4"']) expect(out).not.toContain(v);
  });
});

import http from 'node:http';
import type dns from 'node:dns';
import type { AddressInfo } from 'node:net';
import { addressProblem, destinationProblem, ForbiddenDestinationError, lookupFor, urlProblem } from '../../src/modules/webhooks/destination-policy';

const strict = { allowHttp: false, allowPrivate: false };
const open = { allowHttp: true, allowPrivate: true };

/** A resolver answering from a table, as dns.promises.lookup({ all: true }) does. */
const promisesLookup = (table: Record<string, string[]>) =>
  (async (host: string) => {
    const list = table[host];
    if (!list) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  }) as unknown as typeof dns.promises.lookup;

/** The callback form, whose answer can change between calls (a rebinding name). */
const callbackLookup = (answers: () => string[]) =>
  ((host: string, _opts: unknown, cb: (err: Error | null, list: { address: string; family: number }[]) => void) => {
    cb(
      null,
      answers().map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  }) as unknown as typeof dns.lookup;

describe('urlProblem: the URL alone', () => {
  test.each([
    ['https://127.0.0.1/hook', /loopback/],
    ['https://localhost/hook', /local or internal/],
    ['https://api.localhost/hook', /local or internal/],
    ['https://[::1]/hook', /loopback/],
    ['https://10.0.0.1/hook', /private/],
    ['https://172.16.0.1/hook', /private/],
    ['https://172.31.255.255/hook', /private/],
    ['https://192.168.0.1/hook', /private/],
    ['https://169.254.169.254/latest', /linkLocal/],
    ['https://[fd00::1]/hook', /uniqueLocal/],
    ['https://[fe80::1]/hook', /linkLocal/],
    ['https://0x7f000001/hook', /loopback/],
    ['https://2130706433/hook', /loopback/],
    ['https://0177.0.0.1/hook', /loopback/],
    ['https://127.1/hook', /loopback/],
    ['https://[::ffff:127.0.0.1]/hook', /loopback/],
    ['https://[::ffff:7f00:1]/hook', /loopback/],
    ['https://[::ffff:169.254.169.254]/hook', /linkLocal/],
    ['https://100.64.0.1/hook', /carrierGradeNat/],
    ['https://198.18.0.1/hook', /not a public address/],
    ['https://0.0.0.0/hook', /unspecified/],
    ['https://user:pass@93.184.215.14/hook', /credentials/],
    ['https://user@93.184.215.14/hook', /credentials/],
    ['http://93.184.215.14/hook', /must be an https URL/],
    ['ftp://93.184.215.14/hook', /https URL/],
    ['https://93.184.215.14/hook#frag', /fragment/],
    ['/relative', /absolute URL/],
  ])('when the URL is %s, then it is refused with the reason', (url, why) => {
    expect(urlProblem(url, strict)).toMatch(why);
  });

  test.each([
    'https://93.184.215.14/hook',
    'https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook',
    'https://hooks.example.com/x?y=1',
    'https://8.8.8.8:8443/',
  ])('when the URL is public (%s), then it passes (control)', (url) => expect(urlProblem(url, strict)).toBeNull());

  test('when http and private addresses are allowed, then they pass, and credentials still do not', () => {
    expect(urlProblem('http://127.0.0.1:3000/hook', open)).toBeNull();
    expect(urlProblem('http://localhost:3000/hook', open)).toBeNull();
    expect(urlProblem('http://93.184.215.14/hook', { allowHttp: true, allowPrivate: false })).toBeNull();
    expect(urlProblem('http://u:p@127.0.0.1/hook', open)).toMatch(/credentials/);
  });
});

describe('addressProblem', () => {
  test('when an address is public, then null; otherwise its range is named', () => {
    expect(addressProblem('93.184.215.14', strict)).toBeNull();
    expect(addressProblem('2606:4700::1111', strict)).toBeNull();
    expect(addressProblem('::ffff:10.0.0.1', strict)).toMatch(/private/);
    expect(addressProblem('ff02::1', strict)).toMatch(/multicast/);
    expect(addressProblem('not-an-ip', strict)).toMatch(/not an IP address/);
    expect(addressProblem('10.0.0.1', open)).toBeNull();
  });
});

describe('destinationProblem: the URL, then what its name resolves to now', () => {
  const lookup = promisesLookup({
    'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
    'inside.example.com': ['10.1.2.3'],
    'mixed.example.com': ['93.184.215.14', '127.0.0.1'],
    'mapped.example.com': ['::ffff:127.0.0.1'],
  });

  test('when a name resolves to public addresses only, then it is accepted (control)', async () => {
    expect(await destinationProblem('https://hooks.example.com/hook', strict, lookup)).toBeNull();
  });

  test.each([
    ['https://inside.example.com/hook', /inside\.example\.com resolves to 10\.1\.2\.3/],
    ['https://mixed.example.com/hook', /resolves to 127\.0\.0\.1/],
    ['https://mapped.example.com/hook', /resolves to 127\.0\.0\.1/],
    ['https://nowhere.example.com/hook', /does not resolve/],
  ])('when %s, then it is refused, naming the address', async (url, why) => {
    expect(await destinationProblem(url, strict, lookup)).toMatch(why);
  });

  test('when private addresses are allowed, then a name inside resolves fine', async () => {
    expect(await destinationProblem('https://inside.example.com/hook', open, lookup)).toBeNull();
  });

  test('when the host is an address, then no lookup is made', async () => {
    const never = (async () => {
      throw new Error('looked up');
    }) as unknown as typeof dns.promises.lookup;
    expect(await destinationProblem('https://93.184.215.14/hook', strict, never)).toBeNull();
  });
});

describe('lookupFor: checked again at connection, connected to the address checked', () => {
  let server: http.Server;
  let port: number;
  let received = 0;
  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      received++;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  const get = (lookup: ReturnType<typeof lookupFor>) =>
    new Promise<number | Error>((resolve) => {
      http
        .get({ host: 'rebind.example.com', port, path: '/hook', lookup, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', resolve);
    });

  test('when a name passed the check but now resolves to 127.0.0.1, then the connection is refused and the server hears nothing', async () => {
    let calls = 0;
    // The first answer (the check at creation) was public; the one at connection is loopback.
    const rebinding = callbackLookup(() => (calls++ === 0 ? ['93.184.215.14'] : ['127.0.0.1']));
    rebinding('rebind.example.com', {} as never, () => undefined);
    const before = received;
    const result = await get(lookupFor(strict, rebinding));
    expect(result).toBeInstanceOf(ForbiddenDestinationError);
    expect((result as Error).message).toMatch(/refused to connect to rebind\.example\.com: 127\.0\.0\.1 is a loopback address/);
    expect(received).toBe(before);
  });

  test('when private addresses are allowed, then the same name connects (control: the server hears it)', async () => {
    const before = received;
    expect(
      await get(
        lookupFor(
          open,
          callbackLookup(() => ['127.0.0.1']),
        ),
      ),
    ).toBe(200);
    expect(received).toBe(before + 1);
  });
});

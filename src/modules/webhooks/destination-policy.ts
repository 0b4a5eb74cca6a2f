import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where webhook deliveries may go. A webhook URL is chosen by whoever holds an admin token (or steals
 * one): without these rules it is a way to make the service call into its own private network, the
 * cloud's metadata service, or itself. The URL is checked when an endpoint is created or changed (a
 * clear refusal early), and every address a delivery connects to is checked again at connection
 * time (lookupFor), so a name whose DNS answer changes after the check still never reaches a
 * forbidden address: the connection goes to exactly the address that was checked.
 */
export interface DestinationPolicy {
  /** http:// URLs allowed (development, tests, WEBHOOK_ALLOW_HTTP). */
  allowHttp: boolean;
  /** Loopback, private and other non-public addresses allowed (development and tests only). */
  allowPrivate: boolean;
}

// Ranges ipaddr.js 1.x calls "unicast" that are not public destinations either.
const EXTRA_DENIED = ['198.18.0.0/15', 'fec0::/10', '100::/64', '64:ff9b:1::/48'].map((c) => ipaddr.parseCIDR(c));

/** Why an address may not be connected to, or null when it is a public unicast address. */
export function addressProblem(address: string, policy: Pick<DestinationPolicy, 'allowPrivate'>): string | null {
  if (!ipaddr.isValid(address)) return `"${address}" is not an IP address`;
  if (policy.allowPrivate) return null;
  let ip = ipaddr.parse(address);
  // ::ffff:127.0.0.1 is 127.0.0.1: judge the IPv4 address it carries.
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  const range = ip.range();
  if (range !== 'unicast') return `${ip.toString()} is a ${range} address, not a public one`;
  if (EXTRA_DENIED.some(([net, bits]) => net.kind() === ip.kind() && (ip as ipaddr.IPv4).match(net as ipaddr.IPv4, bits)))
    return `${ip.toString()} is not a public address`;
  return null;
}

/**
 * Why a URL may not be an endpoint, or null. Checks its form alone (no DNS): https (http only when
 * allowed), no credentials in it, and a host that, when it is an address in any spelling (decimal
 * 2130706433, hex 0x7f000001, octal, IPv6 [::1], IPv4-mapped), is a public one: WHATWG URL parsing
 * turns every IPv4 spelling into dotted decimal first, so none slips past as "not an address".
 */
export function urlProblem(text: string, policy: DestinationPolicy): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
    return policy.allowHttp ? 'must be an http or https URL' : 'must be an https URL';
  }
  if (url.username || url.password) return 'must not carry credentials (user:password@)';
  if (url.hash) return 'must not have a #fragment';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === '') return 'must name a host';
  if (ipaddr.isValid(host)) {
    const problem = addressProblem(host, policy);
    return problem ? `must not point at a non-public address (${problem})` : null;
  }
  if (!policy.allowPrivate && /(^|\.)(localhost|localdomain|internal|local)$/i.test(host.replace(/\.$/, ''))) {
    return 'must not point at a local or internal host name';
  }
  return null;
}

/**
 * The full check for a new or changed endpoint: the URL's form, then every address its host resolves
 * to now. A name that does not resolve is refused too (a typo would otherwise fail for days quietly).
 */
export async function destinationProblem(text: string, policy: DestinationPolicy, lookup = dns.promises.lookup): Promise<string | null> {
  const problem = urlProblem(text, policy);
  if (problem) return problem;
  const host = new URL(text).hostname.replace(/^\[|\]$/g, '');
  if (ipaddr.isValid(host)) return null;
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch {
    return `its host ${host} does not resolve`;
  }
  for (const { address } of addresses) {
    const p = addressProblem(address, policy);
    if (p) return `must not point at a non-public address (${host} resolves to ${p.split(' ')[0]})`;
  }
  return null;
}

/** The error a delivery's connection fails with when its host resolves to a forbidden address. */
export class ForbiddenDestinationError extends Error {
  readonly code = 'EFORBIDDENDESTINATION';
  constructor(message: string) {
    super(message);
    this.name = 'ForbiddenDestinationError';
  }
}

/**
 * A `lookup` for http.request / net.connect: resolves the host once per connection and refuses the
 * connection when any answer is a forbidden address (an answer that mixes a public and a private
 * address is a rebinding trick, not a choice); otherwise connects to the address it checked.
 */
export function lookupFor(policy: Pick<DestinationPolicy, 'allowPrivate'>, resolve: typeof dns.lookup = dns.lookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses;
      for (const a of list) {
        const problem = addressProblem(a.address, policy);
        if (problem) return callback(new ForbiddenDestinationError(`refused to connect to ${hostname}: ${problem}`), '', 0);
      }
      if (list.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      if (options.all) return callback(null, list, 0);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

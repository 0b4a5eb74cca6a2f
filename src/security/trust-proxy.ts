import ipaddr from 'ipaddr.js';
import { BlockList, isIP } from 'node:net';

/**
 * What TRUST_PROXY may name in production. A trusted peer's `X-Forwarded-For` decides the client
 * address every per-address limit and audit row uses, so only the proxies in front may be trusted:
 * a few hops, or addresses that no client on the internet can connect from (private, loopback,
 * link-local, carrier-grade NAT, unique-local), or single public addresses (a load balancer's own).
 * A range that reaches into public space (`0.0.0.0/1,128.0.0.0/1`, `::/1`, `8000::/1`) lets any
 * client there name its own address. The entries are read as express reads them (proxy-addr, over
 * ipaddr.js), so what is judged here is what express will trust.
 */
export const MAX_TRUSTED_HOPS = 3;

/** proxy-addr's names for groups of ranges; every one of them is non-public. */
const NAMED = new Set(['loopback', 'linklocal', 'uniquelocal']);

const NON_PUBLIC_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', '169.254.0.0/16', '100.64.0.0/10'].map((c) => ipaddr.IPv4.parseCIDR(c));
const NON_PUBLIC_V6 = ['::1/128', 'fc00::/7', 'fe80::/10'].map((c) => ipaddr.IPv6.parseCIDR(c));

/** One entry as proxy-addr parses it: an address, address/prefix or IPv4 address/netmask. */
function parseEntry(entry: string): [ipaddr.IPv4 | ipaddr.IPv6, number] | null {
  const slash = entry.lastIndexOf('/');
  const text = slash === -1 ? entry : entry.slice(0, slash);
  if (!ipaddr.isValid(text) || isIP(text) === 0) return null;
  let ip = ipaddr.parse(text);
  const max = ip.kind() === 'ipv6' ? 128 : 32;
  if (slash === -1) return [ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress() ? (ip as ipaddr.IPv6).toIPv4Address() : ip, max];
  const range = entry.slice(slash + 1);
  let prefix: number | null = null;
  if (/^\d+$/.test(range)) prefix = Number(range);
  else if (ip.kind() === 'ipv4' && ipaddr.IPv4.isValid(range)) prefix = ipaddr.IPv4.parse(range).prefixLengthFromSubnetMask();
  if (prefix === null || prefix <= 0 || prefix > max) return null;
  // An IPv4-mapped IPv6 subnet spans IPv4 addresses: judge it as the IPv4 subnet it is.
  if (ip.kind() === 'ipv6' && prefix >= 96 && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    ip = (ip as ipaddr.IPv6).toIPv4Address();
    prefix -= 96;
    if (prefix === 0) return [ip, 0];
  }
  return [ip, prefix];
}

/** Whether every address of the range lies in one non-public block (CIDR blocks nest or are disjoint). */
function nonPublic([ip, prefix]: [ipaddr.IPv4 | ipaddr.IPv6, number]): boolean {
  if (ip.kind() === 'ipv4') return NON_PUBLIC_V4.some(([net, bits]) => prefix >= bits && (ip as ipaddr.IPv4).match(net, bits));
  return NON_PUBLIC_V6.some(([net, bits]) => prefix >= bits && (ip as ipaddr.IPv6).match(net, bits));
}

/** Why a TRUST_PROXY value may not be used, or null. `production`: the stricter rules apply. */
export function trustProxyProblem(value: boolean | number | readonly string[], production: boolean): string | null {
  if (value === false) return null;
  if (value === true)
    return production
      ? '"true" trusts any X-Forwarded-For a client sends; set the hop count of your proxies (e.g. 1) or their addresses/subnets (e.g. loopback, 10.0.0.0/8)'
      : null;
  if (typeof value === 'number')
    return production && value > MAX_TRUSTED_HOPS
      ? `a hop count above ${MAX_TRUSTED_HOPS} lets a client add addresses to X-Forwarded-For until its own is trusted; count the proxies in front (usually 1)`
      : null;
  // Entries are named by position, never echoed: a setting's value may be a secret pasted in the wrong place.
  const problems: string[] = [];
  value.forEach((entry, i) => {
    if (NAMED.has(entry)) return;
    const parsed = parseEntry(entry);
    const which = value.length > 1 ? `entry ${i + 1}` : 'the value';
    if (!parsed) problems.push(`${which} is not an address, address/prefix, or one of loopback, linklocal, uniquelocal`);
    else if (production && parsed[1] < (parsed[0].kind() === 'ipv6' ? 128 : 32) && !nonPublic(parsed))
      problems.push(`${which} covers public addresses: any client there could choose its own address; name your proxies' own addresses or private subnets`);
  });
  return problems.length ? problems.join('; ') : null;
}

const nonPublicList = (() => {
  const list = new BlockList();
  for (const [net, bits] of NON_PUBLIC_V4) list.addSubnet(net.toString(), bits, 'ipv4');
  for (const [net, bits] of NON_PUBLIC_V6) list.addSubnet(net.toString(), bits, 'ipv6');
  return list;
})();

/**
 * Peers behind TRUST_PROXY are the few proxies in front, so answers are remembered (a BlockList check
 * costs microseconds, a lookup here nanoseconds); the map is emptied if it ever holds many.
 */
const seen = new Map<string, boolean>();

/** Whether a socket's address is a public one (an IPv4-mapped IPv6 address is read as IPv4). */
export function isPublicAddress(address: string | undefined): boolean {
  if (!address) return false;
  let known = seen.get(address);
  if (known === undefined) {
    if (seen.size >= 1024) seen.clear();
    seen.set(address, (known = checkPublic(address)));
  }
  return known;
}

function checkPublic(address: string): boolean {
  const v4 = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : null;
  if (v4) return !nonPublicList.check(v4, 'ipv4');
  const kind = isIP(address);
  if (kind === 0) return false;
  return !nonPublicList.check(address, kind === 4 ? 'ipv4' : 'ipv6');
}

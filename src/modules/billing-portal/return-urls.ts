/**
 * Where the Stripe customer portal may send the customer's people back to (BILLING_PORTAL_RETURN_URLS).
 * Each rule is an exact origin (`https://vendor.example`: any page of it) or a URL prefix
 * (`https://vendor.example/billing/`: that page and the pages under it). A return URL is compared
 * after the WHATWG URL parser has normalised it (the form a browser will follow: lowercased scheme
 * and host, default port dropped, `.`/`..` and their encodings resolved), and it is that normalised
 * form that goes to Stripe, so what was checked is what the browser is sent to.
 */

export interface ReturnUrlRule {
  /** scheme://host[:port], as URL.origin gives it. */
  origin: string;
  /** null: any path on the origin; else the path the return URL's path must start with, at a segment boundary. */
  pathPrefix: string | null;
}

/** Whitespace, control characters and backslashes: browsers read `\` as `/`, and the others as nothing. */
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const UNSAFE = /[\s\u0000-\u001f\u007f\\]/;
/**
 * An encoded separator, dot or percent sign (a double encoding, `%252e`): a server behind the prefix
 * may decode it into a path outside it.
 */
const ENCODED_SEPARATOR = /%(2f|5c|2e|25)/i;

/**
 * The rules from the setting's entries; throws when one is not a rule, naming it by its place in
 * the list (never its text: a secret pasted in the wrong setting must not reach a log).
 */
export function parseReturnUrlRules(entries: readonly string[]): ReturnUrlRule[] {
  return entries.map((entry, i) => {
    const problem = (why: string) => new Error(`entry ${i + 1} ${why}`);
    if (UNSAFE.test(entry) || !/^https?:\/\//i.test(entry)) throw problem('is not an absolute http(s) URL');
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw problem('is not an absolute http(s) URL');
    }
    if (url.username || url.password) throw problem('must not carry a user name or password');
    if (url.search || url.hash || entry.includes('?') || entry.includes('#')) throw problem('must not carry a query or a fragment');
    if (
      entry
        .slice(url.protocol.length + 2)
        .split('/')[0]!
        .includes('%')
    )
      throw problem('must not have an encoded host');
    if (ENCODED_SEPARATOR.test(url.pathname)) throw problem('must not have an encoded /, \\, . or % in its path');
    return { origin: url.origin, pathPrefix: url.pathname === '/' ? null : url.pathname };
  });
}

/** What a return URL check decided: the URL to hand to Stripe, or why it is refused (safe to show the caller). */
export type ReturnUrlCheck = { url: string } | { refused: string };

/**
 * A path segment that some servers read as `.` or `..` though the WHATWG parser does not:
 * `..;/` (Tomcat and Spring drop path parameters), and its encoded `;`.
 */
const DOT_SEGMENT_WITH_PARAMETERS = /\/\.{1,2}(;|%3b)/i;

/** The return URL in the form to hand to Stripe when a rule allows it; else why not. */
export function checkReturnUrl(rules: readonly ReturnUrlRule[], candidate: string): ReturnUrlCheck {
  if (rules.length === 0) return { refused: 'no return URL is allowed: BILLING_PORTAL_RETURN_URLS is unset' };
  if (candidate.length > 2048) return { refused: 'must be at most 2048 characters' };
  if (UNSAFE.test(candidate)) return { refused: 'must not contain whitespace, control characters or backslashes' };
  // Scheme-relative (`//evil.test`), relative, javascript:, data: and the like are never absolute http(s).
  if (!/^https?:\/\/[^/]/i.test(candidate)) return { refused: 'must be an absolute http(s) URL (https://host/path)' };
  // The authority as written: an encoded character there is refused rather than decoded.
  const authority = candidate.slice(candidate.indexOf('//') + 2).split(/[/?#]/)[0]!;
  if (authority.includes('@')) return { refused: 'must not carry a user name or password (an @ before the host)' };
  if (authority.includes('%')) return { refused: 'must not have an encoded host' };
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return { refused: 'must be an absolute http(s) URL (https://host/path)' };
  }
  if (url.username || url.password) return { refused: 'must not carry a user name or password (an @ before the host)' };
  const sameOrigin = rules.filter((r) => r.origin === url.origin);
  if (sameOrigin.length === 0) return { refused: `its origin (${url.origin}) is not one BILLING_PORTAL_RETURN_URLS allows` };
  const allowed = sameOrigin.some((r) => {
    if (r.pathPrefix === null) return true;
    if (ENCODED_SEPARATOR.test(url.pathname) || DOT_SEGMENT_WITH_PARAMETERS.test(url.pathname)) return false;
    if (url.pathname === r.pathPrefix) return true;
    const prefix = r.pathPrefix.endsWith('/') ? r.pathPrefix : `${r.pathPrefix}/`;
    return url.pathname.startsWith(prefix);
  });
  if (!allowed) {
    return ENCODED_SEPARATOR.test(url.pathname) || DOT_SEGMENT_WITH_PARAMETERS.test(url.pathname)
      ? { refused: 'must not have an encoded /, \\, . or %, or a ..; segment, in its path' }
      : { refused: 'its path is not under a URL prefix BILLING_PORTAL_RETURN_URLS allows' };
  }
  return { url: url.href };
}

/** The return URL in the form to hand to Stripe when a rule allows it; null when none does. */
export function allowedReturnUrl(rules: readonly ReturnUrlRule[], candidate: string): string | null {
  const checked = checkReturnUrl(rules, candidate);
  return 'url' in checked ? checked.url : null;
}

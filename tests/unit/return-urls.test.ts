import { allowedReturnUrl, checkReturnUrl, parseReturnUrlRules } from '../../src/modules/billing-portal/return-urls';

/**
 * BILLING_PORTAL_RETURN_URLS: where the Stripe customer portal may send people back to. Each refusal
 * is paired with the closest URL that is allowed, so a rule that refused everything would fail here.
 */
const rules = parseReturnUrlRules(['https://vendor.example/billing', 'https://app.vendor.example', 'http://localhost:8080/return/']);
const allowed = (u: string) => allowedReturnUrl(rules, u);
const why = (u: string) => {
  const c = checkReturnUrl(rules, u);
  return 'refused' in c ? c.refused : null;
};

describe('allowed return URLs', () => {
  test.each([
    ['an exact prefix', 'https://vendor.example/billing', 'https://vendor.example/billing'],
    ['a page under the prefix', 'https://vendor.example/billing/invoices?tab=2#top', 'https://vendor.example/billing/invoices?tab=2#top'],
    ['any page of an origin rule', 'https://app.vendor.example/anything/at/all', 'https://app.vendor.example/anything/at/all'],
    ['an origin rule without a path', 'https://app.vendor.example', 'https://app.vendor.example/'],
    ['upper case scheme and host, default port', 'HTTPS://VENDOR.EXAMPLE:443/billing/x', 'https://vendor.example/billing/x'],
    ['dot segments that stay under the prefix', 'https://vendor.example/billing/a/../b', 'https://vendor.example/billing/b'],
    ['a prefix ending in a slash, a page under it', 'http://localhost:8080/return/done', 'http://localhost:8080/return/done'],
  ])('when the return URL is %s, then it is allowed in its normalised form', (_label, input, normalised) => {
    expect(allowed(input)).toBe(normalised);
  });
});

describe('refused return URLs, each with a control that is allowed', () => {
  test.each([
    ['another host', 'https://evil.test/billing', 'https://vendor.example/billing'],
    ['the same host, another scheme', 'http://vendor.example/billing', 'https://vendor.example/billing'],
    ['the same host, another port', 'https://vendor.example:8443/billing', 'https://vendor.example:443/billing'],
    ['a host that starts with the allowed one', 'https://vendor.example.evil.test/billing', 'https://vendor.example/billing'],
    ['the allowed host as a user name', 'https://vendor.example@evil.test/billing', 'https://vendor.example/billing'],
    ['the allowed host with an empty user name', 'https://@vendor.example/billing', 'https://vendor.example/billing'],
    ['the allowed host with a trailing dot', 'https://vendor.example./billing', 'https://vendor.example/billing'],
    ['scheme-relative', '//evil.test/billing', 'https://vendor.example/billing'],
    ['scheme-relative to the allowed host', '//vendor.example/billing', 'https://vendor.example/billing'],
    ['a backslash for a slash', 'https://vendor.example\\@evil.test/billing', 'https://vendor.example/billing'],
    ['backslashes after the scheme', 'https:\\\\evil.test/billing', 'https://vendor.example/billing'],
    ['a scheme with one slash', 'https:/evil.test/billing', 'https://vendor.example/billing'],
    ['three slashes', 'https:///evil.test/billing', 'https://vendor.example/billing'],
    ['an encoded host', 'https://vendor%2eexample/billing', 'https://vendor.example/billing'],
    ['an encoded dot in the host', 'https://vendor.example%2eevil.test/billing', 'https://vendor.example/billing'],
    ['an encoded @ in the host', 'https://vendor.example%40evil.test/billing', 'https://vendor.example/billing'],
    ['encoded dots leaving the prefix', 'https://vendor.example/billing/%2e%2e/admin', 'https://vendor.example/billing/%2e%2e/billing/x'],
    ['an encoded slash', 'https://vendor.example/billing/..%2fadmin', 'https://vendor.example/billing/admin'],
    ['an encoded backslash', 'https://vendor.example/billing/..%5cadmin', 'https://vendor.example/billing/admin'],
    ['a double encoding', 'https://vendor.example/billing/%252e%252e/admin', 'https://vendor.example/billing/x/admin'],
    ['a ..; segment', 'https://vendor.example/billing/..;/admin', 'https://vendor.example/billing/x;y/admin'],
    ['an encoded ; after ..', 'https://vendor.example/billing/..%3b/admin', 'https://vendor.example/billing/admin'],
    ['dot segments leaving the prefix', 'https://vendor.example/billing/../admin', 'https://vendor.example/billing/./admin'],
    ['a path that only starts like the prefix', 'https://vendor.example/billing-evil', 'https://vendor.example/billing/evil'],
    ['the prefix in another case', 'https://vendor.example/Billing', 'https://vendor.example/billing'],
    ['javascript:', 'javascript:alert(document.domain)//https://vendor.example/billing', 'https://vendor.example/billing'],
    ['data:', 'data:text/html,<script>alert(1)</script>', 'https://vendor.example/billing'],
    ['relative', '/billing', 'https://vendor.example/billing'],
    ['a tab inside', 'https://vendor.example/bil\tling', 'https://vendor.example/billing'],
    ['a newline inside', 'https://vendor.example/billing\n', 'https://vendor.example/billing'],
    ['a leading space', ' https://vendor.example/billing', 'https://vendor.example/billing'],
    ['another scheme', 'ftp://vendor.example/billing', 'https://vendor.example/billing'],
    ['over 2048 characters', `https://vendor.example/billing/${'a'.repeat(2048)}`, `https://vendor.example/billing/${'a'.repeat(2000)}`],
  ])('when the return URL is %s, then it is refused with a reason', (_label, refused, control) => {
    expect(allowed(refused)).toBeNull();
    expect(why(refused)).toEqual(expect.any(String));
    expect(allowed(control)).not.toBeNull();
  });

  test('when no rule is configured, then every return URL is refused and the reason says the setting is unset', () => {
    expect(checkReturnUrl([], 'https://vendor.example/billing')).toEqual({ refused: expect.stringMatching(/BILLING_PORTAL_RETURN_URLS is unset/) });
    expect(checkReturnUrl(parseReturnUrlRules(['https://vendor.example']), 'https://vendor.example/billing')).toEqual({
      url: 'https://vendor.example/billing',
    });
  });

  test('when a URL is refused, then the reason names what is wrong, never anything but the origin of what was sent', () => {
    expect(why('https://evil.test/billing?token=s3cret')).toBe('its origin (https://evil.test) is not one BILLING_PORTAL_RETURN_URLS allows');
    expect(why('https://vendor.example/billing-evil?token=s3cret')).toBe('its path is not under a URL prefix BILLING_PORTAL_RETURN_URLS allows');
    expect(why('https://vendor.example@evil.test/')).toMatch(/user name or password/);
    expect(why('//evil.test')).toMatch(/absolute http\(s\) URL/);
  });
});

describe('the rules themselves', () => {
  test.each([
    ['a relative URL', '/billing'],
    ['a query', 'https://vendor.example/billing?x=1'],
    ['a fragment', 'https://vendor.example/billing#x'],
    ['credentials', 'https://user:pw@vendor.example'],
    ['an encoded host', 'https://vendor%2eexample'],
    ['an encoded slash', 'https://vendor.example/a%2fb'],
    ['another scheme', 'javascript:alert(1)'],
  ])('when a rule has %s, then the setting is refused, naming the entry by its place', (_label, entry) => {
    expect(() => parseReturnUrlRules(['https://ok.example', entry])).toThrow(/^entry 2 /);
    expect(() => parseReturnUrlRules(['https://ok.example'])).not.toThrow();
  });
});

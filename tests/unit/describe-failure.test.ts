import { describeFailure } from '../../src/lib/describe-failure';

describe('a start-up failure in words', () => {
  test('when an error has causes, then each is said under it', () => {
    const text = describeFailure(new Error('the database did not start', { cause: new Error('could not bind 127.0.0.1:5432') }));
    expect(text).toMatch(/^Error: the database did not start/);
    expect(text).toMatch(/caused by: Error: could not bind 127\.0\.0\.1:5432/);
  });

  test('when something that is not an Error is thrown, then it is shown, never as "undefined"', () => {
    expect(describeFailure(undefined)).not.toMatch(/^undefined$/);
    expect(describeFailure(undefined)).toMatch(/an error without a message/);
    expect(describeFailure(null)).toMatch(/an error without a message/);
    expect(describeFailure({ code: 'EADDRINUSE' })).toContain("code: 'EADDRINUSE'");
    expect(describeFailure('plain text')).toBe("'plain text'");
  });
});

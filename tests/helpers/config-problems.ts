import { ConfigError, loadConfig } from '../../src/config';

/** What loadConfig says is wrong with `env` (it must refuse it, with a ConfigError). */
export function configProblems(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
}

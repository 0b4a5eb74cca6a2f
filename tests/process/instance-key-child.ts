/**
 * One of the processes starting at once on a fresh queue folder (instance-key-race.test.ts): at the
 * given instant reads or makes the instance key, and prints its thumbprint.
 */
import { loadOrCreateInstanceKey } from '../../packages/client/instance-key';

const [dir, at] = [process.argv[2]!, Number(process.argv[3])];
setTimeout(
  () => {
    loadOrCreateInstanceKey(dir).then(
      (key) => process.stdout.write(`${key.thumbprint}\n`),
      (err: Error) => {
        process.stderr.write(`${err.name}: ${err.message}\n`);
        process.exitCode = 1;
      },
    );
  },
  Math.max(0, at - Date.now()),
);

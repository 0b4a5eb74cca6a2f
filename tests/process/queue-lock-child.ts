/**
 * One of the processes racing for a queue lock (queue-lock-race.test.ts): on `go`, waits until the
 * given instant (so all start together), calls acquireLock and says whether it won; on `release`,
 * releases what it won.
 */
import { acquireLock, type QueueLock } from '../../packages/client/queue-lock';

let held: QueueLock | null = null;
const reply = (m: unknown) => process.send?.(m);

process.on('message', (m: { type: 'go'; file: string; at: number; round: number } | { type: 'release'; round: number }) => {
  if (m.type === 'go') {
    setTimeout(
      () => {
        acquireLock(m.file).then(
          (lock) => {
            held = lock;
            reply({ round: m.round, pid: process.pid, won: true });
          },
          (err: Error) => reply({ round: m.round, pid: process.pid, won: false, error: err.name, message: err.message }),
        );
      },
      Math.max(0, m.at - Date.now()),
    );
  } else {
    const lock = held;
    held = null;
    void (lock ? lock.release() : Promise.resolve()).then(() => reply({ round: m.round, pid: process.pid, released: true }));
  }
});
reply({ ready: true, pid: process.pid });

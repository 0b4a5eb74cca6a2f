/**
 * Where bcrypt verifications wait, or rather do not: work that cannot start at once is refused
 * (a fast 503), so a flood can never queue bcrypt work behind it.
 */

/** Gives a slot or lane back; idempotent. */
export type Release = () => void;

/**
 * How many bcrypt verifications may run at once. A key that matches no live key (a guess) may
 * take at most half of the slots, so a flood of guesses can never take the slots real keys need.
 */
export function createSlots(max: number) {
  const guessMax = Math.max(1, Math.floor(max / 2));
  let active = 0;
  let guesses = 0;
  return {
    tryAcquire(guess: boolean): Release | null {
      if (active >= max || (guess && guesses >= guessMax)) return null;
      active++;
      if (guess) guesses++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        active--;
        if (guess) guesses--;
      };
    },
  };
}

/**
 * One verification lane per live key whose own count is past the limit (its start is being
 * flooded): attempts on that key are checked one at a time, in arrival order, outside the shared
 * slots, each waiting at most `waitMs` for its turn. The flood then costs one bcrypt at a time
 * per key, and the real secret, from whatever address, is checked in its turn rather than refused.
 * A lane exists only while someone holds it, so the map holds at most the keys being checked.
 */
export function createLanes(waitMs: number) {
  const lanes = new Map<string, Array<(release: Release) => void>>();

  const releaser = (name: string, queue: Array<(release: Release) => void>): Release => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = queue.shift();
      if (next) next(releaser(name, queue));
      else lanes.delete(name);
    };
  };

  return {
    /** The lane of `name`, once free (null: not free within waitMs). */
    acquire(name: string): Promise<Release | null> {
      const queue = lanes.get(name);
      if (!queue) {
        const fresh: Array<(release: Release) => void> = [];
        lanes.set(name, fresh);
        return Promise.resolve(releaser(name, fresh));
      }
      return new Promise((resolve) => {
        const turn = (release: Release) => {
          clearTimeout(timer);
          resolve(release);
        };
        const timer = setTimeout(() => {
          const i = queue.indexOf(turn);
          if (i >= 0) queue.splice(i, 1);
          resolve(null);
        }, waitMs);
        queue.push(turn);
      });
    },
    get size(): number {
      return lanes.size;
    },
  };
}

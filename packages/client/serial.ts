/**
 * One at a time: each piece of work starts when the one before it has settled (fulfilled or
 * rejected), so a read-compare-write or an append never interleaves with another in this process.
 * A failure reaches its own caller only; the work after it still runs.
 */
export function serial(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
}

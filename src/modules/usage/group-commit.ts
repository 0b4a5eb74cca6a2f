/**
 * Group commit: single-event requests that arrive together are written by one statement.
 * Each submitter waits for the statement that carries its event, so "acknowledged" still
 * means "committed". At most `maxInFlight` statements run at once; while they run, new
 * arrivals queue up and go together in the next one. What it saves, measured, and when to delete
 * it: docs/decisions/group-commit.md.
 */
export interface GroupCommitOptions<T, R> {
  maxInFlight: number;
  maxBatch: number;
  /** Writes a batch; returns one outcome per item, in order (an Error rejects that item alone). */
  flush(items: T[]): Promise<(R | Error)[]>;
}

interface Waiting<T, R> {
  item: T;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export function createGroupCommit<T, R>(opts: GroupCommitOptions<T, R>) {
  let queue: Waiting<T, R>[] = [];
  let inFlight = 0;
  let scheduled = false;
  const idle: (() => void)[] = [];

  async function run(batch: Waiting<T, R>[]): Promise<void> {
    try {
      const outcomes = await opts.flush(batch.map((w) => w.item));
      batch.forEach((w, i) => {
        const o = outcomes[i];
        if (o instanceof Error) w.reject(o);
        else w.resolve(o as R);
      });
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }

  function pump(): void {
    scheduled = false;
    while (inFlight < opts.maxInFlight && queue.length > 0) {
      const batch = queue.length <= opts.maxBatch ? queue : queue.slice(0, opts.maxBatch);
      queue = queue.length <= opts.maxBatch ? [] : queue.slice(opts.maxBatch);
      inFlight++;
      void run(batch).finally(() => {
        inFlight--;
        if (queue.length > 0) schedule();
        else if (inFlight === 0) idle.splice(0).forEach((f) => f());
      });
    }
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    // setImmediate: everything that arrived in this turn of the event loop goes together.
    setImmediate(pump);
  }

  return {
    submit(item: T): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
    /** Resolves when nothing is queued or in flight (graceful shutdown). */
    drained(): Promise<void> {
      if (queue.length === 0 && inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
  };
}

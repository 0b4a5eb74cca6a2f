import { serial } from '../../packages/client/serial';

/** serial() is the one-at-a-time rule of the license store, the usage queue and the flusher. */
describe('serial()', () => {
  test('when work is handed in while other work is under way, then it runs after it, one at a time and in order', async () => {
    const run = serial();
    const events: string[] = [];
    let running = 0;
    let most = 0;
    const step = (name: string, ms: number) =>
      run(async () => {
        running += 1;
        most = Math.max(most, running);
        events.push(`start ${name}`);
        await new Promise((resolve) => setTimeout(resolve, ms));
        events.push(`end ${name}`);
        running -= 1;
        return name;
      });
    const answers = await Promise.all([step('a', 30), step('b', 1), step('c', 10)]);
    expect(answers).toEqual(['a', 'b', 'c']);
    expect(most).toBe(1);
    expect(events).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  test('when one piece of work fails, then only its caller sees the error and the next piece still runs', async () => {
    const run = serial();
    const failed = run(() => Promise.reject(new Error('disk gone')));
    const next = run(() => Promise.resolve('written'));
    await expect(failed).rejects.toThrow('disk gone');
    await expect(next).resolves.toBe('written');
  });

  test('when two runners are made, then they do not wait for each other (one per store or queue)', async () => {
    const first = serial();
    const second = serial();
    let release!: () => void;
    const held = first(() => new Promise<void>((resolve) => (release = resolve)));
    await expect(second(() => Promise.resolve('not blocked'))).resolves.toBe('not blocked');
    release();
    await held;
  });
});

import fs from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const pg = globalThis.__embeddedPostgres;
  if (!pg) return;
  await pg.handle.stop();
  fs.rmSync(pg.dir, { recursive: true, force: true });
}

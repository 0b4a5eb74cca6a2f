import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { secretFileProblem } from './lib/secret-file';

/**
 * Outside production, a missing ADMIN_API_TOKEN means one is generated once, kept in
 * DATA_DIR/admin-token (mode 0600) and reused on later starts; refused if group or others may read it.
 */
export function loadOrCreateDevAdminToken(dataDir: string): { token: string; file: string; created: boolean } {
  const file = path.resolve(dataDir, 'admin-token');
  if (fs.existsSync(file)) {
    // An admin token others can read is theirs too.
    const problem = secretFileProblem(file, fs.statSync(file).mode);
    if (problem) throw new Error(`the development admin token file: ${problem}`);
    return { token: fs.readFileSync(file, 'utf8').trim(), file, created: false };
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const token = randomBytes(32).toString('hex');
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, file, created: true };
}

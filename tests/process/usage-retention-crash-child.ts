/**
 * A usage retention run in a process of its own, killed (SIGKILL) right after the step named by
 * CRASH_AFTER (archived: the archive written and recorded, the partition still attached; detached:
 * the partition out of usage_events, not yet dropped). See usage-retention-crash.test.ts.
 */
import pino from 'pino';
import { createKnex } from '../../src/db/knex';
import { createAuditRepository } from '../../src/modules/audit/audit-repository';
import { createAuditService } from '../../src/modules/audit/audit-service';
import { createUsageRetentionRepository } from '../../src/modules/usage-retention/usage-retention-repository';
import { runUsageRetention } from '../../src/modules/usage-retention/usage-retention-service';

async function main() {
  const logger = pino({ level: 'silent' });
  const db = createKnex({ url: process.env.DATABASE_URL!, poolMax: 3 });
  await runUsageRetention({
    db,
    repo: createUsageRetentionRepository(),
    audit: createAuditService({ db, repo: createAuditRepository(), logger }),
    logger,
    settings: { retentionMonths: 13, archiveDir: process.env.ARCHIVE_DIR!, withoutArchive: false, stripeEnabled: true },
    settleMs: 0,
    faults: {
      after: (step) => {
        if (step === process.env.CRASH_AFTER) {
          process.stderr.write(`killed after ${step}\n`);
          process.kill(process.pid, 'SIGKILL');
        }
      },
    },
  });
  process.stdout.write('finished without a crash\n');
  await db.destroy();
}

void main();

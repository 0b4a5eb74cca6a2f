import dotenv from 'dotenv';
import { loadConfig } from '../config';
import { buildContainer } from '../container';
import { openDatabase } from '../db/open-database';
import { systemContext } from '../lib/request-context';
import { createLogger } from '../logger';

/** npm run reconcile: re-list Stripe subscriptions and invoices, repair local drift, print what changed. */
async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const config = loadConfig();
  const logger = createLogger({ ...config, logPretty: false, logLevel: 'warn' });
  const database = await openDatabase(config, logger);
  try {
    const c = buildContainer({ config, db: database.db, logger });
    if (!c.stripe.enabled) throw new Error('Stripe is off (STRIPE_SECRET_KEY unset): there is nothing to reconcile with');
    const ctx = systemContext();
    // Subscriptions first: an invoice names its subscription by our id once we hold it.
    const subscriptions = await c.subscriptions.reconcile(ctx);
    const invoices = await c.invoices.reconcile(ctx);
    console.log(JSON.stringify({ ...subscriptions, invoices }, null, 2));
    console.log(`Checked ${subscriptions.checked} Stripe subscription(s); ${subscriptions.changes.length} change(s).`);
    console.log(`Checked ${invoices.checked} Stripe invoice(s); ${invoices.changes.length} change(s).`);
  } finally {
    await database.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});

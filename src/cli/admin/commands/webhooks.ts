import { InvalidArgumentError } from '@commander-js/extra-typings';
import type { BodyOf, WebhookAttempt, WebhookEndpoint, WebhookTest } from '../admin-client';
import { action, collect, int, printPages, type Ctx, type Deps, type Program } from '../context';
import { UsageError } from '../failure';
import { details, jsonText, table } from '../io';
import { openKeyFile } from '../key-file';
import { progress } from '../progress';
import { stripeWebhooksReportCommand } from './reports';

/** The service checks each filter (422 names a wrong one); the CLI passes them on as typed. */
type Filters = BodyOf<'/api/webhook-endpoints', 'post'>['events'];

const status = (e: WebhookEndpoint) => (e.disabled ? `disabled (${e.disabled_reason ?? 'admin'})` : e.failing_since ? 'failing' : 'enabled');

const endpointTable = (rows: WebhookEndpoint[]) =>
  table(rows, [
    { header: 'id', value: (e) => e.id },
    { header: 'url', value: (e) => e.url },
    { header: 'events', value: (e) => e.events.join(',') },
    { header: 'status', value: status },
    { header: 'last success', value: (e) => e.last_success_at ?? '-' },
    { header: 'created', value: (e) => e.created_at },
  ]);

const endpointDetails = (e: WebhookEndpoint) =>
  details([
    ['id', e.id],
    ['url', e.url],
    ['events', e.events.join(', ')],
    ['description', e.description ?? '-'],
    ['status', status(e)],
    ['disabled at', e.disabled_at ?? '-'],
    ['failing since', e.failing_since ?? '-'],
    ['last success', e.last_success_at ?? '-'],
    ['created', e.created_at],
    ['updated', e.updated_at],
  ]);

const SECRET_OUTPUT_HELP = 'write the signing secret (with --json: the answer) to this file, created readable by you only (0600), not to stdout';

/**
 * A new signing secret goes to stdout alone (`SECRET=$(billing-admin webhooks create ...)`), or with
 * --output into a file only its owner can read; what was done, and that it is shown once, to stderr.
 */
function emitNewSecret(ctx: Ctx, o: { output?: string }, body: unknown, secret: string, about: string): void {
  if (o.output === undefined) {
    return ctx.print(body, () => {
      ctx.out(`${secret}\n`);
      ctx.say(`${about}\nStore this signing secret now: it is shown this once and cannot be read again.`);
    });
  }
  const file = openKeyFile(o.output);
  try {
    file.write(ctx.json ? jsonText(body) : `${secret}\n`);
  } finally {
    file.close();
  }
  ctx.say(`${about}\nThe signing secret is in ${file.path} (readable by you only): it is shown this once and cannot be read again.`);
}

const attemptTable = (rows: WebhookAttempt[]) =>
  table(rows, [
    { header: 'attempted', value: (a) => a.attempted_at },
    { header: 'event', value: (a) => a.event_id },
    { header: 'type', value: (a) => a.event_type },
    { header: 'outcome', value: (a) => a.outcome },
    { header: 'status', value: (a) => (a.status === null ? '-' : String(a.status)) },
    { header: 'ms', value: (a) => String(a.duration_ms) },
    { header: 'error', value: (a) => a.error ?? '-' },
  ]);

const testDetails = (r: WebhookTest) =>
  details([
    ['event', r.event_id],
    ['outcome', r.attempt.outcome],
    ['status', r.attempt.status === null ? '-' : String(r.attempt.status)],
    ['duration', `${r.attempt.duration_ms} ms`],
    ['error', r.attempt.error ?? '-'],
    ['delivery', `${r.delivery.id} (${r.delivery.state}${r.delivery.next_attempt_at ? `, next attempt ${r.delivery.next_attempt_at}` : ''})`],
  ]);

/** 0s to 7d, as the service takes it: checked here too, so a typo is a usage error before any request. */
const grace = (value: string): string => {
  if (!/^(0|[1-9]\d{0,6}[dhms]|0[dhms])$/.test(value)) throw new InvalidArgumentError('must be a duration like 0s, 30m, 24h or 7d');
  return value;
};

/** `billing-admin webhooks ...`: the endpoints events are sent to, and their deliveries. Returns the group. */
export function webhooksCommands(program: Program, deps: Deps) {
  const webhooks = program
    .command('webhooks')
    .description(
      'webhook endpoints events are sent to (create, list, show, update, delete, rotate-secret, test, deliveries); alone: the Stripe webhooks report',
    );
  stripeWebhooksReportCommand(webhooks, deps);

  webhooks
    // The URL is an argument: --url is the service's own (a global option).
    .command('create <url>')
    .description('create an endpoint at <url> (https, a public address); its signing secret is printed once, alone on stdout')
    .requiredOption('--event <filter>', 'an event type, <object>.* or * (repeat for several)', collect)
    .option('--description <text>', 'what it is for')
    .option('--output <file>', SECRET_OUTPUT_HELP)
    .action(
      action(deps, async (ctx, o, [url]) => {
        if (typeof o.output === 'string') openKeyFile(o.output).close();
        const r = await ctx.client().createWebhookEndpoint({ url, events: o.event as Filters, description: o.description });
        emitNewSecret(ctx, o, r, r.secret, `Created webhook endpoint ${r.webhook_endpoint.id} (${r.webhook_endpoint.url}).`);
      }),
    );

  webhooks
    .command('list')
    .description('list endpoints, newest first')
    .option('--limit <n>', 'rows per page (1-200)', int(1, 200))
    .option('--cursor <cursor>', 'start at this page (from a previous list)')
    .option('--all', 'follow every page')
    .action(
      action(deps, async (ctx, o) => {
        await printPages(
          ctx,
          o,
          (cursor) => ctx.client().listWebhookEndpoints({ limit: o.limit, cursor }),
          endpointTable,
          'webhook endpoints',
          progress(ctx.io, 'endpoints'),
        );
      }),
    );

  webhooks
    .command('show <id>')
    .description('show one endpoint (never its secret)')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().getWebhookEndpoint(id);
        ctx.print(r, () => ctx.out(endpointDetails(r.webhook_endpoint)));
      }),
    );

  webhooks
    .command('update <id>')
    .description('change an endpoint’s URL, events or description, or disable or enable it')
    .option('--endpoint-url <url>', 'the new URL (--url is the service’s own)')
    .option('--event <filter>', 'the new event filters, replacing the old (repeat for several)', collect)
    .option('--description <text>', 'the new description')
    .option('--clear-description', 'remove the description')
    .option('--disable', 'stop sending to it')
    .option('--enable', 'send to it again (clears its failure record)')
    .action(
      action(deps, async (ctx, o, [id]) => {
        if (o.disable && o.enable) throw new UsageError('give --disable or --enable, not both');
        if (o.clearDescription && o.description !== undefined) throw new UsageError('give --description or --clear-description, not both');
        const body = {
          url: o.endpointUrl,
          events: o.event as Filters | undefined,
          description: o.clearDescription ? null : o.description,
          disabled: o.disable ? true : o.enable ? false : undefined,
        };
        if (Object.values(body).every((v) => v === undefined))
          throw new UsageError('give --endpoint-url, --event, --description, --clear-description, --disable or --enable');
        const r = await ctx.client().updateWebhookEndpoint(id, body);
        ctx.print(r, () => ctx.out(endpointDetails(r.webhook_endpoint)));
      }),
    );

  webhooks
    .command('delete <id>')
    .description('delete an endpoint, with its secrets and its deliveries')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        await ctx.client().deleteWebhookEndpoint(id);
        ctx.print({ deleted: id }, () => ctx.say(`Deleted webhook endpoint ${id}.`));
      }),
    );

  webhooks
    .command('rotate-secret <id>')
    .description('give an endpoint a new signing secret (printed once); the old one keeps signing beside it for --grace')
    .option('--grace <duration>', 'how long the old secret keeps signing: 0s (stops now) to 7d (default 24h)', grace)
    .option('--output <file>', SECRET_OUTPUT_HELP)
    .action(
      action(deps, async (ctx, o, [id]) => {
        if (typeof o.output === 'string') openKeyFile(o.output).close();
        const r = await ctx.client().rotateWebhookSecret(id, o.grace !== undefined ? { grace_period: o.grace } : {});
        const old = r.previous_secret_expires_at ? `the previous one signs too until ${r.previous_secret_expires_at}` : 'the previous one no longer signs';
        emitNewSecret(ctx, o, r, r.secret, `New signing secret for webhook endpoint ${id}; ${old}.`);
      }),
    );

  webhooks
    .command('test <id>')
    .description('send a webhook_endpoint.test event to the endpoint now and print the outcome (exit 1 when it was not delivered)')
    .action(
      action(deps, async (ctx, _o, [id]) => {
        const r = await ctx.client().testWebhookEndpoint(id);
        ctx.print(r, () => ctx.out(testDetails(r)));
        // The answer is printed either way; a script still sees that the receiver did not take it.
        if (r.attempt.outcome !== 'delivered') throw new Error(`the test event was not delivered to ${id}: it is retried on the schedule`);
      }),
    );

  webhooks
    .command('deliveries <id>')
    .description('list the delivery attempts to an endpoint, newest first')
    .option('--limit <n>', 'rows per page (1-200)', int(1, 200))
    .option('--cursor <cursor>', 'start at this page (from a previous list)')
    .option('--all', 'follow every page')
    .action(
      action(deps, async (ctx, o, [id]) => {
        await printPages(
          ctx,
          o,
          (cursor) => ctx.client().listWebhookDeliveries(id, { limit: o.limit, cursor }),
          attemptTable,
          'delivery attempts',
          progress(ctx.io, 'attempts'),
        );
      }),
    );

  return webhooks;
}

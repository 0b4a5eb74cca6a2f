import { z } from 'zod';
import { iso, uuid } from '../../http/common-schemas';
import { responses } from '../../http/response-schemas';
import { defineRoute } from '../../http/route';
import { planCode } from '../plans/plans-schemas';
import type { Subscription } from './subscriptions-repository';
import type { SubscriptionsService } from './subscriptions-service';

const customerParams = z.object({ id: uuid });
const subscriptionParams = z.object({ id: uuid, subscriptionId: uuid });

export const subscriptionJson = (s: Subscription) => ({
  id: s.id,
  customer_id: s.customerId,
  plan: { code: s.plan.code, name: s.plan.name, entitlements: s.plan.entitlements },
  status: s.status,
  stripe_subscription_id: s.stripeSubscriptionId,
  current_period_start: iso(s.currentPeriodStart),
  current_period_end: iso(s.currentPeriodEnd),
  cancel_at_period_end: s.cancelAtPeriodEnd,
  canceled_at: iso(s.canceledAt),
  trial_end: iso(s.trialEnd),
  created_at: iso(s.createdAt),
  updated_at: iso(s.updatedAt),
});

export function subscriptionsRoutes(subscriptions: SubscriptionsService) {
  return [
    defineRoute({
      method: 'post',
      path: '/api/customers/:id/subscriptions',
      auth: 'admin',
      summary: 'Subscribe a customer to a plan (in Stripe when Stripe is on); an Idempotency-Key header is honoured',
      response: responses.subscription,
      auditAction: 'subscription.create',
      params: customerParams,
      body: z.strictObject({ plan: planCode, trial_days: z.number().int().min(1).max(730).optional() }),
      async handle({ params, body, ctx, req }, res) {
        const key = req.get('idempotency-key');
        const s = await subscriptions.create(ctx, params.id, {
          planCode: body.plan,
          trialDays: body.trial_days,
          idempotencyKey: key && /^[\x21-\x7e]{1,200}$/.test(key) ? key : undefined,
        });
        res.status(201).json({ subscription: subscriptionJson(s) });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/customers/:id/subscriptions',
      auth: 'admin',
      summary: 'A customer’s subscriptions, newest first',
      response: responses.subscriptions,
      params: customerParams,
      async handle({ params }, res) {
        res.json({ data: (await subscriptions.listForAdmin(params.id)).map(subscriptionJson) });
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/api/customers/:id/subscriptions/:subscriptionId',
      auth: 'admin',
      summary: 'Move a subscription to another plan (prorated in Stripe)',
      response: responses.subscription,
      auditAction: 'subscription.change_plan',
      params: subscriptionParams,
      body: z.strictObject({ plan: planCode }),
      async handle({ params, body, ctx }, res) {
        const s = await subscriptions.changePlan(ctx, params.id, params.subscriptionId, body.plan);
        res.json({ subscription: subscriptionJson(s) });
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/api/customers/:id/subscriptions/:subscriptionId',
      auth: 'admin',
      summary: 'Cancel at the end of the period, or at once with ?immediately=true',
      response: responses.subscription,
      auditAction: 'subscription.cancel',
      params: subscriptionParams,
      query: z.strictObject({ immediately: z.enum(['true', 'false']).default('false') }),
      async handle({ params, query, ctx }, res) {
        const s = await subscriptions.cancel(ctx, params.id, params.subscriptionId, query.immediately === 'true');
        res.json({ subscription: subscriptionJson(s) });
      },
    }),
    defineRoute({
      method: 'post',
      path: '/api/stripe/reconcile',
      auth: 'admin',
      summary: 'Re-list linked customers’ subscriptions in Stripe, repair local drift, report what changed',
      response: responses.reconciled,
      auditAction: 'subscription.reconcile',
      async handle({ ctx }, res) {
        if (!subscriptions.stripeEnabled) {
          res.json({ stripe_enabled: false, checked: 0, changes: [] });
          return;
        }
        res.json({ stripe_enabled: true, ...(await subscriptions.reconcile(ctx)) });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/api/subscriptions',
      auth: 'customer',
      summary: 'The calling customer’s own subscriptions',
      response: responses.subscriptions,
      async handle({ principal }, res) {
        res.json({ data: (await subscriptions.list(principal.customerId)).map(subscriptionJson) });
      },
    }),
  ];
}

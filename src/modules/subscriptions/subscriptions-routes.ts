import { z } from 'zod';
import { uuid } from '../../http/common-schemas';
import { json } from '../../http/response-schemas';
import { reconciledResponse, subscriptionJson, subscriptionResponse, subscriptionsResponse } from './subscriptions-schemas';
import { defineRoute, type HandlersFor } from '../../http/route';
import { planCode } from '../plans/plans-schemas';
import type { SubscriptionsService } from './subscriptions-service';
import type { InvoicesService } from '../invoices/invoices-service';

const customerParams = z.object({ id: uuid });
const subscriptionParams = z.object({ id: uuid, subscriptionId: uuid });

/** The caller's own key for a create: Stripe's key is derived from it, within Stripe's 255 characters. */
const createHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,190}$/, 'must be 1-190 printable ASCII characters without spaces')
    .optional()
    .describe('Makes a retried create safe: the same key gives the same Stripe subscription'),
});

export function subscriptionsRouteSpecs() {
  return {
    postCustomersByIdSubscriptions: defineRoute({
      method: 'post',
      path: '/api/customers/:id/subscriptions',
      auth: 'admin',
      summary: 'Subscribe a customer to a plan (in Stripe when Stripe is on); an Idempotency-Key header is honoured',
      request: {
        params: customerParams,
        headers: createHeaders,
        body: z.strictObject({ plan: planCode, trial_days: z.number().int().min(1).max(730).optional() }),
      },
      responses: { 201: json(subscriptionResponse, 'The subscription as created (and as Stripe has it)') },
      errors: ['CUSTOMER_DELETED', 'PLAN_ARCHIVED', 'CONFLICT', 'BAD_GATEWAY'],
      auditAction: 'subscription.create',
    }),
    getCustomersByIdSubscriptions: defineRoute({
      method: 'get',
      path: '/api/customers/:id/subscriptions',
      auth: 'admin',
      summary: 'A customer’s subscriptions, newest first',
      request: { params: customerParams },
      responses: { 200: json(subscriptionsResponse, 'The customer’s subscriptions') },
    }),
    patchCustomersByIdSubscriptionsBySubscriptionId: defineRoute({
      method: 'patch',
      path: '/api/customers/:id/subscriptions/:subscriptionId',
      auth: 'admin',
      summary: 'Move a subscription to another plan (prorated in Stripe)',
      request: { params: subscriptionParams, body: z.strictObject({ plan: planCode }) },
      responses: { 200: json(subscriptionResponse, 'The subscription on its new plan') },
      errors: ['PLAN_ARCHIVED', 'CONFLICT', 'BAD_GATEWAY'],
      auditAction: 'subscription.change_plan',
    }),
    deleteCustomersByIdSubscriptionsBySubscriptionId: defineRoute({
      method: 'delete',
      path: '/api/customers/:id/subscriptions/:subscriptionId',
      auth: 'admin',
      summary: 'Cancel at the end of the period, or at once with ?immediately=true',
      request: { params: subscriptionParams, query: z.strictObject({ immediately: z.enum(['true', 'false']).default('false') }) },
      responses: { 200: json(subscriptionResponse, 'The subscription, canceled or set to cancel') },
      errors: ['CONFLICT', 'BAD_GATEWAY'],
      auditAction: 'subscription.cancel',
    }),
    postStripeReconcile: defineRoute({
      method: 'post',
      path: '/api/stripe/reconcile',
      auth: 'admin',
      summary: 'Re-list linked customers’ subscriptions and invoices in Stripe, repair local drift, report what changed',
      responses: { 200: json(reconciledResponse, 'What was checked and each change made') },
      errors: ['BAD_GATEWAY'],
      auditAction: 'subscription.reconcile',
    }),
    getSubscriptions: defineRoute({
      method: 'get',
      path: '/api/subscriptions',
      auth: 'customer',
      summary: 'The calling customer’s own subscriptions',
      responses: { 200: json(subscriptionsResponse, 'The customer’s subscriptions, with plan and entitlements') },
    }),
  };
}

export function subscriptionsHandlers(
  subscriptions: SubscriptionsService,
  invoices: Pick<InvoicesService, 'reconcile'>,
): HandlersFor<ReturnType<typeof subscriptionsRouteSpecs>> {
  return {
    postCustomersByIdSubscriptions: async ({ params, headers, body, ctx }) => {
      const s = await subscriptions.create(ctx, params.id, { planCode: body.plan, trialDays: body.trial_days, idempotencyKey: headers['idempotency-key'] });
      return { status: 201, body: { subscription: subscriptionJson(s) } };
    },
    getCustomersByIdSubscriptions: async ({ params }) => ({ status: 200, body: { data: (await subscriptions.listForAdmin(params.id)).map(subscriptionJson) } }),
    patchCustomersByIdSubscriptionsBySubscriptionId: async ({ params, body, ctx }) => {
      const s = await subscriptions.changePlan(ctx, params.id, params.subscriptionId, body.plan);
      return { status: 200, body: { subscription: subscriptionJson(s) } };
    },
    deleteCustomersByIdSubscriptionsBySubscriptionId: async ({ params, query, ctx }) => {
      const s = await subscriptions.cancel(ctx, params.id, params.subscriptionId, query.immediately === 'true');
      return { status: 200, body: { subscription: subscriptionJson(s) } };
    },
    postStripeReconcile: async ({ ctx }) => {
      if (!subscriptions.stripeEnabled) return { status: 200, body: { stripe_enabled: false, checked: 0, changes: [], invoices: { checked: 0, changes: [] } } };
      // Subscriptions first: an invoice names its subscription by our id once we hold it.
      const subscriptionsResult = await subscriptions.reconcile(ctx);
      return { status: 200, body: { stripe_enabled: true, ...subscriptionsResult, invoices: await invoices.reconcile(ctx) } };
    },
    getSubscriptions: async ({ principal }) => ({ status: 200, body: { data: (await subscriptions.list(principal.customerId)).map(subscriptionJson) } }),
  };
}

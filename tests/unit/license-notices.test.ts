/**
 * noticeFor: which license event a subscription's state calls for, by the license's own rules
 * (license-status.ts), for the cases the API tests do not reach (trials, pauses, the look-back).
 */
import { noticeFor } from '../../src/modules/licenses/license-notices';
import type { Subscription } from '../../src/modules/subscriptions/subscription-types';

const DAY = 86_400;
const NOW = 1_800_000_000;
const at = (s: number) => new Date(s * 1000);
const settings = { graceDays: 14, expiringSoonDays: 7, lookbackDays: 30 };

function sub(over: Partial<Subscription>): Subscription {
  return {
    id: '01900000-0000-7000-8000-000000000001',
    customerId: '01900000-0000-7000-8000-000000000002',
    planId: '01900000-0000-7000-8000-000000000003',
    plan: { code: 'pro', name: 'Pro', entitlements: { features: [], limits: {} } },
    stripeSubscriptionId: null,
    status: 'active',
    currentPeriodStart: at(NOW - 27 * DAY),
    currentPeriodEnd: at(NOW + 3 * DAY),
    cancelAtPeriodEnd: false,
    canceledAt: null,
    trialEnd: null,
    paymentFailingSince: null,
    createdAt: at(NOW - 60 * DAY),
    updatedAt: at(NOW - 27 * DAY),
    ...over,
  };
}

test.each([
  ['active, renewing, 3 days left', {}, null],
  ['active, set to cancel, 3 days left', { cancelAtPeriodEnd: true }, { kind: 'expiring_soon', endsAt: NOW + 3 * DAY }],
  ['active, set to cancel, 8 days left', { cancelAtPeriodEnd: true, currentPeriodEnd: at(NOW + 8 * DAY) }, null],
  [
    'active, set to cancel, exactly 7 days left',
    { cancelAtPeriodEnd: true, currentPeriodEnd: at(NOW + 7 * DAY) },
    { kind: 'expiring_soon', endsAt: NOW + 7 * DAY },
  ],
  ['trialing, converting', { status: 'trialing', currentPeriodEnd: null, trialEnd: at(NOW + 2 * DAY) }, null],
  [
    'trialing, set to cancel',
    { status: 'trialing', currentPeriodEnd: null, trialEnd: at(NOW + 2 * DAY), cancelAtPeriodEnd: true },
    { kind: 'expiring_soon', endsAt: NOW + 2 * DAY },
  ],
  ['open-ended', { currentPeriodEnd: null }, null],
  ['past_due, 10 days of grace left', { status: 'past_due', paymentFailingSince: at(NOW - 4 * DAY) }, null],
  ['past_due, 5 days of grace left', { status: 'past_due', paymentFailingSince: at(NOW - 9 * DAY) }, { kind: 'expiring_soon', endsAt: NOW + 5 * DAY }],
  ['past_due, grace over', { status: 'past_due', paymentFailingSince: at(NOW - 15 * DAY) }, { kind: 'expired', endsAt: NOW - DAY }],
  ['paid, period over 2 days ago (grace)', { currentPeriodEnd: at(NOW - 2 * DAY) }, null],
  ['paid, period over 10 days ago (grace nearly out)', { currentPeriodEnd: at(NOW - 10 * DAY) }, { kind: 'expiring_soon', endsAt: NOW + 4 * DAY }],
  ['canceled', { status: 'canceled', canceledAt: at(NOW - DAY) }, { kind: 'expired', endsAt: NOW - DAY }],
  [
    'paused (a trial ended unpaid)',
    { status: 'paused', trialEnd: at(NOW - 2 * DAY), currentPeriodEnd: at(NOW + 28 * DAY) },
    { kind: 'expired', endsAt: NOW - 2 * DAY },
  ],
  [
    'canceled before the look-back',
    { status: 'canceled', canceledAt: at(NOW - 40 * DAY), currentPeriodEnd: at(NOW - 40 * DAY), updatedAt: at(NOW - 40 * DAY) },
    null,
  ],
  [
    'canceled long ago (when asked), ended lately',
    { status: 'canceled', canceledAt: at(NOW - 300 * DAY), updatedAt: at(NOW - DAY) },
    { kind: 'expired', endsAt: NOW - 300 * DAY },
  ],
  ['incomplete_expired (never valid)', { status: 'incomplete_expired' }, null],
  ['incomplete (never valid)', { status: 'incomplete' }, null],
] as const)('%s', (_label, over, expected) => {
  const n = noticeFor(sub(over), NOW, settings);
  expect(n && { kind: n.kind, endsAt: n.endsAt }).toEqual(expected);
});

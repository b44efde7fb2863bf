import { describe, expect, it } from 'vitest';
import { translate, type WebhookDeps } from '../../connectors/hubspot/webhook.js';
import type { WebhookEvent } from '../../src/connectors/contract.js';

const event = (id: number, sourceId: string): WebhookEvent => ({
  id: String(id),
  type: 'contact.propertyChange',
  occurredAt: '2026-11-01T10:00:00.000Z',
  payload: { eventId: id, objectId: 501, propertyName: 'hs_email_optout', propertyValue: 'true', changeSource: 'API', sourceId, subscriptionType: 'contact.propertyChange' },
});

function deps(calls: string[], ownAppId?: string): WebhookDeps {
  const api = {
    batchRead: (ids: string[]) => {
      calls.push(`batchRead ${ids.join(',')}`);
      return Promise.resolve({ results: [{ id: '501', properties: { email: 'ann@example.com' } }] });
    },
  };
  return { api: api as unknown as WebhookDeps['api'], prefs: {} as WebhookDeps['prefs'], connectorId: 'hubspot', subscriptions: new Map(), appSecret: 'x', webhookUrl: undefined, ownAppId };
}

describe('hubspot webhook: echoes of our own app', () => {
  it('events written by our own app are dropped before any API call; other sources are resolved', async () => {
    const calls: string[] = [];
    const ours = await translate(deps(calls, '424242'), [event(1, '424242')]);
    expect(ours.observations).toEqual([]);
    expect(calls).toEqual([]);

    const theirs = await translate(deps(calls, '424242'), [event(2, 'userId:7654321')]);
    expect(calls).toEqual(['batchRead 501']);
    expect(theirs.observations).toEqual([expect.objectContaining({ subject: 'ann@example.com', state: 'denied', purpose: '*', recordId: '501' })]);
  });

  it('without ownAppId nothing is dropped', async () => {
    const calls: string[] = [];
    const t = await translate(deps(calls), [event(3, '424242')]);
    expect(calls).toHaveLength(1);
    expect(t.observations).toHaveLength(1);
  });
});

describe('hubspot webhook: contacts consentd has stored', () => {
  const ev = (id: number, objectId: number, propertyName: string, propertyValue: string): WebhookEvent => ({
    id: String(id),
    type: 'contact.propertyChange',
    occurredAt: '2026-11-01T10:00:00.000Z',
    payload: { eventId: id, objectId, propertyName, propertyValue, changeSource: 'EMAIL', sourceId: 'userId:1', subscriptionType: 'contact.propertyChange' },
  });
  const known = (map: Record<string, string>) => ({ subjectOf: (id: string) => Promise.resolve(map[id] ?? null) });

  it('an opt-out or a bounce of a stored contact is named from the store, without an API call', async () => {
    const calls: string[] = [];
    const t = await translate(deps(calls), [ev(1, 501, 'hs_email_optout', 'true'), ev(2, 501, 'hs_email_hard_bounce_reason_enum', 'BAD_MAILBOX')], known({ '501': 'stored@example.com' }));
    expect(calls).toEqual([]);
    expect(t.observations.map((o) => [o.subject, o.kind, o.state, o.recordId])).toEqual([
      ['stored@example.com', 'consent', 'denied', '501'],
      ['stored@example.com', 'suppression', 'unknown', '501'],
    ]);
    // Nothing was read, so no snapshot is claimed: the stored one stays until the next pull.
    expect(t.records).toEqual([]);
  });

  it('a contact consentd never stored is still read from HubSpot', async () => {
    const calls: string[] = [];
    const t = await translate(deps(calls), [ev(3, 501, 'hs_email_optout', 'true')], known({}));
    expect(calls).toEqual(['batchRead 501']);
    expect(t.observations).toEqual([expect.objectContaining({ subject: 'ann@example.com', state: 'denied' })]);
  });
});

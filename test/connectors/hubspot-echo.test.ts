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

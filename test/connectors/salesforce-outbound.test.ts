/**
 * Salesforce Outbound Messages: verification of real sandbox deliveries (OrganizationId, XML),
 * translation into observations, and the SOAP Ack the daemon must answer.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebhookRejection, type ConnectorWebhook, type WebhookRequest } from '../../src/connectors/contract.js';
import { outboundAckResponse } from '../../connectors/salesforce/index.js';
import { parseXml } from '../../connectors/salesforce/outbound.js';
import { createSalesforceSandbox, type SalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { captureOutbound, makeConnector, person } from './salesforce-helpers.js';

let sb: SalesforceSandbox;

beforeAll(async () => {
  sb = createSalesforceSandbox({ webhookRetryDelaysMs: [50] });
  await sb.start();
});
afterAll(async () => {
  await sb.stop();
});
beforeEach(() => {
  sb.reset();
});

function hook(orgId: string = sb.orgId): ConnectorWebhook {
  const { connector } = makeConnector(sb, { nearRealTime: { mode: 'outbound_messages', organizationId: orgId } });
  if (!connector.webhook) throw new Error('no webhook');
  return connector.webhook;
}

async function rejection(h: ConnectorWebhook, req: WebhookRequest): Promise<WebhookRejection> {
  try {
    await h.verify(req);
  } catch (e) {
    expect(e).toBeInstanceOf(WebhookRejection);
    return e as WebhookRejection;
  }
  throw new Error('expected a rejection');
}

describe('salesforce outbound messages', () => {
  it('verifies a real delivery: one event per Notification, observations like a pull', async () => {
    sb.seed([person(1, 'ann@example.com')]);
    const req = await captureOutbound(sb, () => sb.actions.unsubscribe('ann@example.com'));
    const h = hook();
    const events = await h.verify(req);
    expect(events).toHaveLength(1);
    expect(events[0]?.id).toMatch(/^04l/);
    expect(events[0]?.type).toBe('outbound.Contact');
    const contact = sb.state.contactsByEmail('ann@example.com')[0];
    const modified = new Date(Date.parse(String(contact?.['LastModifiedDate']).replace('+0000', 'Z'))).toISOString();
    expect(events[0]?.occurredAt).toBe(modified);
    const t = await h.toObservations(events);
    expect(t.observations).toEqual([
      expect.objectContaining({ subject: 'ann@example.com', recordId: contact?.['Id'], channel: 'email', purpose: '*', state: 'denied', strength: 'explicit', how: 'webhook', statedAt: modified }),
    ]);
    // The same delivery again: the same event ids (the store dedupes them).
    expect((await h.verify(req)).map((e) => e.id)).toEqual(events.map((e) => e.id));
    // The listener answered our Ack: Salesforce counted it delivered at the first attempt.
    expect(sb.webhooks.log.at(-1)).toMatchObject({ attempts: 1, status: 200 });
    expect(sb.webhooks.log.at(-1)?.deliveredAt).not.toBeNull();
  });

  it('accepts the 15-character form of the organization id', async () => {
    sb.seed([person(1, 'ann@example.com')]);
    const req = await captureOutbound(sb, () => sb.actions.unsubscribe('ann@example.com'));
    expect(await hook(sb.orgId.slice(0, 15)).verify(req)).toHaveLength(1);
  });

  it('a wrong OrganizationId is unauthorized (401)', async () => {
    sb.seed([person(1, 'ann@example.com')]);
    const req = await captureOutbound(sb, () => sb.actions.unsubscribe('ann@example.com'));
    const r = await rejection(hook('00D000000000001AAA'), req);
    expect(r.reason).toBe('unauthorized');
    expect(r.status).toBe(401);
  });

  it('malformed XML, a non-SOAP body, a wrong content type or method are refused', async () => {
    sb.seed([person(1, 'ann@example.com')]);
    const req = await captureOutbound(sb, () => sb.actions.unsubscribe('ann@example.com'));
    const h = hook();
    const body = req.rawBody.toString('utf8');
    for (const bad of [body.slice(0, -20), body.replace('<Notification>', '<Notification><Oops>'), 'not xml', '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', '<a/><b/>']) {
      const r = await rejection(h, { ...req, rawBody: Buffer.from(bad) });
      expect(r.reason).toBe('malformed');
      expect(r.status).toBe(400);
    }
    expect((await rejection(h, { ...req, rawBody: Buffer.from('<?xml version="1.0"?><root><x/></root>') })).reason).toBe('malformed');
    expect((await rejection(h, { ...req, headers: { ...req.headers, 'content-type': 'application/json' } })).status).toBe(415);
    expect((await rejection(h, { ...req, method: 'GET' })).status).toBe(405);
  });

  it('an Individual notification (ShouldForget) is resolved to its Contacts through the API', async () => {
    sb.seed([person(1, 'forget@example.com', { subscribedAt: '2024-01-01T00:00:00.000Z' })]);
    const req = await captureOutbound(sb, () => sb.actions.erasureRequest('forget@example.com'));
    const h = hook();
    const events = await h.verify(req);
    expect(events.map((e) => e.type)).toEqual(['outbound.Individual']);
    const t = await h.toObservations(events);
    expect(t.observations).toContainEqual(expect.objectContaining({ subject: 'forget@example.com', kind: 'erasure', how: 'webhook' }));
    expect(t.records?.map((r) => r.subject)).toEqual(['forget@example.com']);
  });

  it('outboundAckResponse() is the SOAP Ack Salesforce waits for', () => {
    const ack = outboundAckResponse();
    expect(ack.status).toBe(200);
    expect(ack.contentType).toBe('text/xml');
    const doc = parseXml(ack.body);
    expect(doc.name).toBe('Envelope');
    expect(doc.children[0]?.children[0]).toMatchObject({ name: 'notificationsResponse', attrs: { xmlns: 'http://soap.sforce.com/2005/09/outbound' } });
    expect(doc.children[0]?.children[0]?.children[0]).toMatchObject({ name: 'Ack', text: 'true' });
  });
});

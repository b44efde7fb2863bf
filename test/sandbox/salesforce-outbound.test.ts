/**
 * The Salesforce sandbox's Outbound Messages (SOAP notifications with Ack and retries) and its
 * control API (/__sandbox/...).
 */
import { Connection } from 'jsforce';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { readBody, startHttpServer, type RunningServer } from '../../src/sandbox/http.js';
import type { SeedPerson } from '../../src/sandbox/seed-types.js';

const VERSION = '59.0';
const ACK =
  '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>';

interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A listener answering from a script of [status, body] (then Ack forever). */
class Listener {
  received: Received[] = [];
  script: [number, string][] = [];
  server!: RunningServer;

  async start(): Promise<string> {
    this.server = await startHttpServer(async (req, res) => {
      this.received.push({ headers: req.headers, body: (await readBody(req)).toString('utf8') });
      const [status, body] = this.script.shift() ?? [200, ACK];
      res.writeHead(status, { 'content-type': 'text/xml; charset=utf-8' });
      res.end(body);
    });
    return `${this.server.url}/sfdc/outbound`;
  }
}

function person(i: number, email = `p${i}@example.com`): SeedPerson {
  return {
    index: i,
    email,
    firstName: 'Ann',
    lastName: `Lee${i}`,
    phone: null,
    presence: {
      salesforce: {
        emails: [email, email.toUpperCase()],
        optedOut: false,
        optedOutAt: null,
        subscribedAt: null,
        purposes: {},
        hardBounced: false,
        complained: false,
        erasureRequested: false,
        updatedAt: '2025-01-01T00:00:00.000Z',
      },
    },
  };
}

/** Every <sf:Field>value</sf:Field> of each Notification. */
function notifications(xml: string): Record<string, string>[] {
  return [...xml.matchAll(/<Notification>([\s\S]*?)<\/Notification>/g)].map((m) => Object.fromEntries([...(m[1] ?? '').matchAll(/<sf:(\w+)>([^<]*)<\/sf:\1>/g)].map((f) => [f[1] ?? '', f[2] ?? ''])));
}

describe('Salesforce sandbox: Outbound Messages', () => {
  const listener = new Listener();
  const sb = createSalesforceSandbox({ webhookRetryDelaysMs: [20, 20, 20] });
  let conn: Connection;
  beforeAll(async () => {
    await sb.start();
    sb.setOutboundMessageUrl(await listener.start());
    sb.seed(Array.from({ length: 200 }, (_, i) => person(i * 5)));
    conn = new Connection({ loginUrl: sb.url, version: VERSION });
    await conn.login(sb.credentials.username, sb.credentials.password);
  });
  afterAll(async () => {
    await sb.stop();
    await listener.server.close();
  });
  beforeEach(() => {
    listener.received = [];
    listener.script = [];
  });

  it('sends a SOAP notification when the API updates a Contact (echoes included)', async () => {
    const id = sb.state.contactsByEmail('p0@example.com')[0]?.['Id'] as string;
    await conn.sobject('Contact').update({ Id: id, HasOptedOutOfEmail: true });
    await sb.webhooks.idle();
    expect(listener.received).toHaveLength(1);
    const msg = listener.received[0] as Received;
    expect(msg.headers['content-type']).toBe('text/xml; charset=utf-8');
    expect(msg.headers['soapaction']).toBe('""');
    expect(msg.body).toContain('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"');
    expect(msg.body).toContain('<notifications xmlns="http://soap.sforce.com/2005/09/outbound">');
    expect(msg.body).toContain(`<OrganizationId>${sb.orgId}</OrganizationId>`);
    expect(msg.body).toMatch(/<ActionId>04k[0-9A-Za-z]{15}<\/ActionId><SessionId xsi:nil="true"\/>/);
    expect(msg.body).toContain(`<EnterpriseUrl>${sb.url}/services/Soap/c/${VERSION}/`);
    expect(msg.body).toContain('<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">');
    expect(msg.body).toMatch(/<Notification><Id>04l[0-9A-Za-z]{15}<\/Id>/);
    const [n] = notifications(msg.body);
    expect(n).toMatchObject({ Id: id, Email: 'p0@example.com', HasOptedOutOfEmail: 'true', IsEmailBounced: 'false' });
    expect(n?.['SystemModstamp']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('notifies a control-API unsubscribe for every record of the address (any case)', async () => {
    const res = await fetch(`${sb.url}/__sandbox/actions/unsubscribe`, { method: 'POST', body: JSON.stringify({ email: 'P5@EXAMPLE.COM' }) });
    expect(res.status).toBe(200);
    const out = (await res.json()) as { records: string[] };
    expect(out.records).toHaveLength(2);
    await sb.webhooks.idle();
    expect(listener.received).toHaveLength(1);
    const ns = notifications(listener.received[0]?.body ?? '');
    expect(ns.map((n) => n['Email'])).toEqual(['p5@example.com', 'P5@EXAMPLE.COM']);
    expect(ns.every((n) => n['HasOptedOutOfEmail'] === 'true')).toBe(true);
  });

  it('retries until the listener answers 2xx with <Ack>true</Ack>', async () => {
    listener.script = [
      [500, 'oops'],
      [200, '<html>no ack</html>'],
    ];
    sb.actions.bounce('p10@example.com', '550 mailbox unavailable');
    await sb.webhooks.idle();
    expect(listener.received).toHaveLength(3);
    expect(listener.received[2]?.body).toBe(listener.received[0]?.body);
    const rec = sb.webhooks.log[sb.webhooks.log.length - 1];
    expect(rec).toMatchObject({ attempts: 3, status: 200 });
    expect(rec?.deliveredAt).not.toBeNull();
    const ns = notifications(listener.received[0]?.body ?? '');
    expect(ns[0]).toMatchObject({ EmailBouncedReason: '550 mailbox unavailable', IsEmailBounced: 'true' });
  });

  it('gives up after the retry schedule when the listener never acknowledges', async () => {
    listener.script = Array.from({ length: 4 }, (): [number, string] => [503, 'busy']);
    sb.actions.unsubscribe('p15@example.com');
    await sb.webhooks.idle();
    expect(listener.received).toHaveLength(4);
    expect(sb.webhooks.log[sb.webhooks.log.length - 1]).toMatchObject({ attempts: 4, status: 503, deliveredAt: null });
  });

  it('batches at most 100 notifications per message', async () => {
    const rows = await conn.query<{ Id: string }>('SELECT Id FROM Contact ORDER BY Id LIMIT 150');
    await conn.sobject('Contact').update(rows.records.map((r) => ({ Id: r.Id, DoNotCall: true })));
    await sb.webhooks.idle();
    expect(listener.received.map((r) => notifications(r.body).length)).toEqual([100, 50]);
  });

  it('emits Individual notifications for an erasure request', async () => {
    const out = sb.actions.erasureRequest('p20@example.com');
    await sb.webhooks.idle();
    const bodies = listener.received.map((r) => r.body);
    const ind = bodies.find((b) => b.includes('xsi:type="sf:Individual"')) ?? '';
    expect(notifications(ind)[0]).toMatchObject({ Id: out.individualId, ShouldForget: 'true' });
    // Linking the new Individual changed both Contacts (IndividualId).
    const contacts = bodies.find((b) => b.includes('xsi:type="sf:Contact"')) ?? '';
    expect(notifications(contacts).map((n) => n['IndividualId'])).toEqual([out.individualId, out.individualId]);
  });
});

describe('Salesforce sandbox: an outbound rule that leaves out the integration user', () => {
  const listener = new Listener();
  const sb = createSalesforceSandbox({ webhookRetryDelaysMs: [20], outboundExcludesApiUser: true });
  beforeAll(async () => {
    await sb.start();
    sb.setOutboundMessageUrl(await listener.start());
    sb.seed([person(1), person(2)]);
  });
  afterAll(async () => {
    await sb.stop();
    await listener.server.close();
  });

  it("sends what people do and not what the API user writes (LastModifiedById <> that user)", async () => {
    const conn = new Connection({ loginUrl: sb.url, version: VERSION });
    await conn.login(sb.credentials.username, sb.credentials.password);
    const id = sb.state.contactsByEmail('p1@example.com')[0]?.['Id'] as string;
    await conn.sobject('Contact').update({ Id: id, HasOptedOutOfEmail: true });
    await sb.webhooks.idle();
    expect(listener.received).toHaveLength(0);
    expect(sb.state.contact(id)?.['LastModifiedById']).toBe(sb.userId);

    await fetch(`${sb.url}/__sandbox/actions/unsubscribe`, { method: 'POST', body: JSON.stringify({ email: 'p2@example.com' }) });
    await sb.webhooks.idle();
    const ns = listener.received.flatMap((r) => notifications(r.body));
    expect(ns.map((n) => n['Email'])).toEqual(['p2@example.com', 'P2@EXAMPLE.COM']);
    const modifier = sb.state.contactsByEmail('p2@example.com')[0]?.['LastModifiedById'];
    expect(modifier).not.toBe(sb.userId);
  });
});

describe('Salesforce sandbox: control API', () => {
  const sb = createSalesforceSandbox();
  const post = (path: string, body: unknown): Promise<Response> => fetch(`${sb.url}/__sandbox${path}`, { method: 'POST', body: JSON.stringify(body) });
  beforeAll(() => sb.start());
  afterAll(() => sb.stop());

  it('seeds explicit people or a generated population, and resets', async () => {
    let res = await post('/seed', { people: [person(1, 'ctl@example.com')] });
    expect(await res.json()).toMatchObject({ people: 1, contacts: 2, leads: 0 });
    res = await post('/seed', { count: 500, seed: 3, now: '2025-01-01T00:00:00Z' });
    const counts = (await res.json()) as { people: number; contacts: number; leads: number; individuals: number; consents: number };
    expect(counts.people).toBeGreaterThan(250);
    expect(counts.leads).toBeGreaterThan(0);
    expect(counts.consents).toBeGreaterThan(0);
    const summary = (await (await fetch(`${sb.url}/__sandbox/state/summary`)).json()) as Record<string, number>;
    expect(summary['Contact']).toBe(counts.contacts + 2);
    // Granted purposes became OptIn consents with CaptureDate = subscribedAt, on DataUsePurposes.
    const optIns = sb.state.consents().filter((c) => c['PrivacyConsentStatus'] === 'OptIn');
    expect(optIns.length).toBeGreaterThan(0);
    expect(sb.state.purposes().map((p) => p['Name'])).toEqual(expect.arrayContaining(['newsletter']));
    await post('/reset', {});
    expect(sb.state.counts()['Contact']).toBe(0);
  });

  it('inspects by email, and plays resubscribe, bounce and erasure request', async () => {
    sb.seed([{ ...person(2, 'ctl2@example.com'), presence: { salesforce: { ...(person(2, 'ctl2@example.com').presence.salesforce as NonNullable<SeedPerson['presence']['salesforce']>), optedOut: true } } }]);
    let res = await post('/actions/resubscribe', { email: 'ctl2@example.com', purpose: 'newsletter', source: 'Pricing page form' });
    const out = (await res.json()) as { individualId: string; consentId: string };
    const state = (await (await fetch(`${sb.url}/__sandbox/state/contacts?email=CTL2@example.com`)).json()) as {
      contacts: Record<string, unknown>[];
      individuals: Record<string, unknown>[];
      consents: Record<string, unknown>[];
    };
    expect(state.contacts.map((c) => c['HasOptedOutOfEmail'])).toEqual([false, false]);
    expect(state.contacts.map((c) => c['IndividualId'])).toEqual([out.individualId, out.individualId]);
    expect(state.consents).toHaveLength(1);
    expect(state.consents[0]).toMatchObject({ Id: out.consentId, PrivacyConsentStatus: 'OptIn', CaptureSource: 'Pricing page form', ContactPointType: 'Email', PartyId: out.individualId });
    expect(String(state.consents[0]?.['CaptureDate'])).toMatch(/\+0000$/);

    const before = sb.state.contactsByEmail('ctl2@example.com')[0] as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, 5));
    await post('/actions/bounce', { email: 'ctl2@example.com', reason: '550 no such user' });
    const bounced = sb.state.contactsByEmail('ctl2@example.com')[0] as Record<string, unknown>;
    expect(bounced['IsEmailBounced']).toBe(true);
    expect(bounced['LastModifiedDate']).toBe(before['LastModifiedDate']); // a system change
    expect(String(bounced['SystemModstamp']) > String(before['SystemModstamp'])).toBe(true);

    await post('/actions/erasure-request', { email: 'ctl2@example.com' });
    expect(sb.state.byEmail('ctl2@example.com').individuals[0]).toMatchObject({ Id: out.individualId, ShouldForget: true });

    res = await post('/actions/unsubscribe', { email: 'nobody@example.com' });
    expect(res.status).toBe(404);
  });

  it('sets faults and limits, expires sessions and reports calls', async () => {
    sb.seed([person(3, 'ctl3@example.com')]);
    const conn = new Connection({ loginUrl: sb.url, version: VERSION });
    await conn.login(sb.credentials.username, sb.credentials.password);
    await conn.query('SELECT Id FROM Contact');
    const calls = (await (await fetch(`${sb.url}/__sandbox/calls`)).json()) as { total: number; calls: Record<string, number> };
    expect(calls.calls).toMatchObject({ 'POST /services/Soap/u/59.0 200': 1, 'GET /services/data/v59.0/query 200': 1 });

    expect(await (await post('/faults', { latencyMs: 5 })).json()).toMatchObject({ latencyMs: 5, errorRate: 0 });
    expect(sb.faults.settings.latencyMs).toBe(5);
    await post('/faults', { latencyMs: 0 });

    await post('/limits', { used: 14_999 });
    await conn.query('SELECT Id FROM Contact');
    expect((await (await fetch(`${sb.url}/__sandbox/limits`)).json()) as unknown).toEqual({ max: 15_000, used: 15_000 });
    await post('/limits', { used: 0 });

    const logins = sb.logins;
    await post('/sessions/expire', {});
    await conn.query('SELECT Id FROM Contact');
    expect(sb.logins).toBe(logins + 1);
  });
});

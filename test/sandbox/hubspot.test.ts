/**
 * The HubSpot sandbox through the real SDK (@hubspot/api-client 13.5): CRM v3 contacts
 * (basic, batch, search), communication preferences v3 (SDK) and v4 (apiRequest), auth,
 * rate limits and injected faults.
 */
import { Client } from '@hubspot/api-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHubSpotSandbox, type HubSpotSandbox } from '../../connectors/hubspot/sandbox/index.js';
import { hubspotPeople } from '../../connectors/hubspot/sandbox/people.js';

interface ApiErr {
  code: number;
  body: Record<string, unknown>;
  headers: Record<string, string>;
}

async function apiError(p: Promise<unknown>): Promise<ApiErr> {
  try {
    await p;
  } catch (e) {
    return e as ApiErr;
  }
  throw new Error('expected the call to fail');
}

/**
 * The SDK's retry decorator is process-wide and bound when an API object is first built:
 * touch the APIs right after constructing the client so each client keeps its own setting.
 */
function client(sb: HubSpotSandbox, extra: { numberOfApiCallRetries?: number; accessToken?: string } = {}): Client {
  const c = new Client({ accessToken: extra.accessToken ?? sb.credentials.accessToken, basePath: sb.url, numberOfApiCallRetries: extra.numberOfApiCallRetries ?? 0 });
  void c.crm.contacts.basicApi;
  void c.communicationPreferences.statusApi;
  return c;
}

const ids = (n: number, from = 1001): { id: string }[] => Array.from({ length: n }, (_, i) => ({ id: String(from + i) }));

describe('HubSpot sandbox: CRM v3 contacts through the SDK', () => {
  const sb = createHubSpotSandbox({ tenSecondlyLimit: 100_000, searchPerSecond: 1000 });
  let hs: Client;
  let total = 0;

  beforeAll(async () => {
    await sb.start();
    sb.seed(hubspotPeople(250));
    total = sb.state.count();
    hs = client(sb);
  });
  afterAll(() => sb.stop());

  it('getPage pages through every contact exactly once', async () => {
    const seen = new Set<string>();
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await hs.crm.contacts.basicApi.getPage(100, after, ['email', 'hs_email_optout', 'hs_email_optout_1001']);
      pages++;
      for (const c of page.results) {
        expect(seen.has(c.id)).toBe(false);
        seen.add(c.id);
        expect(c.properties).toHaveProperty('email');
        expect(c.properties).toHaveProperty('hs_email_optout');
        expect(c.properties).toHaveProperty('lastmodifieddate');
        expect(c.createdAt).toBeInstanceOf(Date);
      }
      after = page.paging?.next?.after;
    } while (after);
    expect(seen.size).toBe(total);
    expect(total).toBe(255); // 250 people, 5 with a case-variant duplicate
    expect(pages).toBe(3);
  });

  it('keeps case-variant duplicates as separate contacts', async () => {
    const dups = sb.state.contactsByEmail('PERSON7@example.com');
    expect(dups.map((c) => c.properties['email'])).toEqual(['person7@example.com', 'Person7@Example.com']);
  });

  it('rejects limit 101 with 400 VALIDATION_ERROR', async () => {
    const e = await apiError(hs.crm.contacts.basicApi.getPage(101));
    expect(e.code).toBe(400);
    expect(e.body['category']).toBe('VALIDATION_ERROR');
    expect(e.body['status']).toBe('error');
  });

  it('answers a bad token with 401 INVALID_AUTHENTICATION', async () => {
    const bad = client(sb, { accessToken: 'pat-na1-wrong' });
    const e = await apiError(bad.crm.contacts.basicApi.getPage(10));
    expect(e.code).toBe(401);
    expect(e.body['category']).toBe('INVALID_AUTHENTICATION');
    expect(String(e.body['message'])).toMatch(/^Authentication credentials not found/);
  });

  it('getById returns a contact and 404 for an unknown id', async () => {
    const c = await hs.crm.contacts.basicApi.getById('1001', ['email', 'firstname']);
    expect(c.properties['email']).toBe('person0@example.com');
    const e = await apiError(hs.crm.contacts.basicApi.getById('999999'));
    expect(e.code).toBe(404);
    expect(e.body['category']).toBe('OBJECT_NOT_FOUND');
  });

  it('batch read: 100 inputs ok, 101 rejected, unknown ids answered 207', async () => {
    const ok = await hs.crm.contacts.batchApi.read({ inputs: ids(100), properties: ['email'], propertiesWithHistory: [] });
    expect(ok.status).toBe('COMPLETE');
    expect(ok.results).toHaveLength(100);
    expect('numErrors' in ok ? ok.numErrors : undefined).toBeUndefined();

    const e = await apiError(hs.crm.contacts.batchApi.read({ inputs: ids(101), properties: [], propertiesWithHistory: [] }));
    expect(e.code).toBe(400);
    expect(e.body['category']).toBe('VALIDATION_ERROR');

    const partial = await hs.crm.contacts.batchApi.read({ inputs: [{ id: '1001' }, { id: '888888' }, { id: '888889' }], properties: [], propertiesWithHistory: [] });
    expect(partial.results).toHaveLength(1);
    expect('numErrors' in partial && partial.numErrors).toBe(1);
    const err = 'errors' in partial ? partial.errors?.[0] : undefined;
    expect(err?.category).toBe('OBJECT_NOT_FOUND');
    expect(err?.context?.['ids']).toEqual(['888888', '888889']);
  });

  it('batch update: 100 ok and bumps lastmodifieddate, 101 rejected, read-only property rejected, 207 for unknown ids', async () => {
    const before = sb.state.contact('1010')?.updatedAt ?? '';
    const inputs = ids(100).map((i) => ({ id: i.id, properties: { firstname: `Renamed${i.id}` } }));
    const res = await hs.crm.contacts.batchApi.update({ inputs });
    expect(res.results).toHaveLength(100);
    const after = sb.state.contact('1010');
    expect(after?.properties['firstname']).toBe('Renamed1010');
    expect(Date.parse(after?.updatedAt ?? '')).toBeGreaterThan(Date.parse(before));
    expect(after?.properties['lastmodifieddate']).toBe(after?.updatedAt);

    const tooMany = await apiError(hs.crm.contacts.batchApi.update({ inputs: ids(101).map((i) => ({ id: i.id, properties: { firstname: 'x' } })) }));
    expect(tooMany.code).toBe(400);

    const ro = await apiError(hs.crm.contacts.batchApi.update({ inputs: [{ id: '1001', properties: { hs_email_optout: 'true' } }] }));
    expect(ro.code).toBe(400);
    expect(ro.body['category']).toBe('VALIDATION_ERROR');
    expect(String(ro.body['message'])).toContain('READ_ONLY_VALUE');

    const partial = await hs.crm.contacts.batchApi.update({ inputs: [{ id: '1002', properties: { lastname: 'Partial' } }, { id: '777777', properties: { lastname: 'x' } }] });
    expect('numErrors' in partial && partial.numErrors).toBe(1);
    expect(partial.results.map((r) => r.id)).toEqual(['1002']);
  });

  it('batch create, upsert and archive', async () => {
    const created = await hs.crm.contacts.batchApi.create({ inputs: [{ properties: { email: 'new.one@example.com', firstname: 'New' }, associations: [] }] });
    expect(created.results).toHaveLength(1);
    const dup = await apiError(hs.crm.contacts.batchApi.create({ inputs: [{ properties: { email: 'NEW.ONE@example.com' }, associations: [] }] }));
    expect(dup.code).toBe(409);
    const up = await hs.crm.contacts.batchApi.upsert({
      inputs: [
        { id: 'new.one@example.com', idProperty: 'email', properties: { lastname: 'Upserted' } },
        { id: 'new.two@example.com', idProperty: 'email', properties: { firstname: 'Two' } },
      ],
    });
    expect(up.results.map((r) => r._new)).toEqual([false, true]);
    const id = created.results[0]?.id ?? '';
    await hs.crm.contacts.batchApi.archive({ inputs: [{ id }] });
    expect((await apiError(hs.crm.contacts.basicApi.getById(id))).code).toBe(404);
    const archived = await hs.crm.contacts.basicApi.getPage(100, undefined, undefined, undefined, undefined, true);
    expect(archived.results.map((r) => r.id)).toContain(id);
  });

  it('search by lastmodifieddate with sorts and paging returns every match in order', async () => {
    const all = await (async () => {
      const out: { id: string; lm: number }[] = [];
      let after: string | undefined;
      do {
        const p = await hs.crm.contacts.basicApi.getPage(100, after);
        for (const c of p.results) out.push({ id: c.id, lm: Date.parse(c.properties['lastmodifieddate'] ?? '') });
        after = p.paging?.next?.after;
      } while (after);
      return out;
    })();
    const lms = all.map((c) => c.lm).sort((a, b) => a - b);
    const cutoff = lms[Math.floor(lms.length / 3)] ?? 0;
    const expected = all
      .filter((c) => c.lm >= cutoff)
      .sort((a, b) => a.lm - b.lm || Number(a.id) - Number(b.id))
      .map((c) => c.id);

    const got: string[] = [];
    let after: string | undefined;
    let total = -1;
    do {
      const res = await hs.crm.contacts.searchApi.doSearch({
        filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE' as never, value: String(cutoff) }] }],
        sorts: [JSON.stringify({ propertyName: 'lastmodifieddate', direction: 'ASCENDING' })],
        properties: ['email', 'lastmodifieddate', 'hs_email_optout'],
        limit: 50,
        after: after ?? '0',
      });
      total = res.total;
      got.push(...res.results.map((r) => r.id));
      after = res.paging?.next?.after;
    } while (after);
    expect(total).toBe(expected.length);
    expect(got).toEqual(expected);

    // Object-form sorts (what HubSpot documents), descending, with an ISO value and a second filter group.
    const desc = await hs.crm.contacts.searchApi.doSearch({
      filterGroups: [
        { filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE' as never, value: new Date(cutoff).toISOString() }] },
        { filters: [{ propertyName: 'hs_object_id', operator: 'EQ' as never, value: '1001' }] },
      ],
      sorts: [{ propertyName: 'lastmodifieddate', direction: 'DESCENDING' } as unknown as string],
      properties: [],
      limit: 200,
      after: '0',
    });
    const descIds = desc.results.map((r) => Number(r.id));
    expect(desc.results.length).toBeGreaterThanOrEqual(expected.length);
    const times = desc.results.map((r) => Date.parse(r.properties['lastmodifieddate'] ?? ''));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(descIds).toContain(1001);
  });

  it('search filters: EQ on email (case-insensitive), IN, HAS_PROPERTY, NOT_HAS_PROPERTY, BETWEEN', async () => {
    const s = (filters: Record<string, unknown>[]) =>
      hs.crm.contacts.searchApi.doSearch({ filterGroups: [{ filters: filters as never }], sorts: [], properties: ['email'], limit: 200, after: '0' });
    const eq = await s([{ propertyName: 'email', operator: 'EQ', value: 'PERSON7@EXAMPLE.COM' }]);
    expect(eq.total).toBe(2);
    const inn = await s([{ propertyName: 'email', operator: 'IN', values: ['person1@example.com', 'person2@example.com'] }]);
    expect(inn.results.map((r) => r.properties['email'])).toEqual(['person1@example.com', 'person2@example.com']);
    const bounced = await s([{ propertyName: 'hs_email_hard_bounce_reason_enum', operator: 'HAS_PROPERTY' }]);
    expect(bounced.total).toBe(3); // persons 5, 102, 199
    const noPhone = await s([{ propertyName: 'phone', operator: 'NOT_HAS_PROPERTY' }]);
    expect(noPhone.total).toBeGreaterThan(100);
    const between = await s([{ propertyName: 'hs_object_id', operator: 'BETWEEN', value: '1001', highValue: '1010' }]);
    expect(between.total).toBe(10);
    const optedOut = await s([{ propertyName: 'hs_email_optout', operator: 'EQ', value: 'true' }]);
    expect(optedOut.total).toBe(25); // every 10th person (none of them has a duplicate)
  });

  it('search limits: 10,000-result cap, > 5 filter groups, > 6 filters, limit > 200', async () => {
    const base = { sorts: [], properties: [], limit: 10 };
    const cap = await apiError(hs.crm.contacts.searchApi.doSearch({ ...base, filterGroups: [], after: '10000' }));
    expect(cap.code).toBe(400);
    expect(cap.body['category']).toBe('VALIDATION_ERROR');
    const f = { propertyName: 'email', operator: 'HAS_PROPERTY' as never };
    const groups = await apiError(hs.crm.contacts.searchApi.doSearch({ ...base, after: '0', filterGroups: Array.from({ length: 6 }, () => ({ filters: [f] })) }));
    expect(groups.code).toBe(400);
    const filters = await apiError(hs.crm.contacts.searchApi.doSearch({ ...base, after: '0', filterGroups: [{ filters: Array.from({ length: 7 }, () => f) }] }));
    expect(filters.code).toBe(400);
    const limit = await apiError(hs.crm.contacts.searchApi.doSearch({ ...base, limit: 201, after: '0', filterGroups: [] }));
    expect(limit.code).toBe(400);
  });

  it('injected faults: 5xx with HubSpot error JSON, and 207 partial failures', async () => {
    sb.faults.set({ errorRate: 1 });
    const e = await apiError(hs.crm.contacts.basicApi.getPage(10));
    sb.faults.set({ errorRate: 0 });
    expect([500, 502, 503]).toContain(e.code);
    expect(e.body['status']).toBe('error');

    sb.faults.set({ partialFailureRate: 1 });
    const res = await hs.crm.contacts.batchApi.update({ inputs: [{ id: '1003', properties: { firstname: 'Flaky' } }] });
    sb.faults.set({ partialFailureRate: 0 });
    expect('numErrors' in res && res.numErrors).toBe(1);
    expect(res.results).toHaveLength(0);
    expect(sb.state.contact('1003')?.properties['firstname']).not.toBe('Flaky');
  });

  it('counts calls by endpoint and status', () => {
    const snap = sb.calls.snapshot();
    expect(snap['GET /crm/v3/objects/contacts 200']).toBeGreaterThan(0);
    expect(snap['POST /crm/v3/objects/contacts/batch/update 207']).toBeGreaterThan(0);
    expect(snap['POST /crm/v3/objects/contacts/search 200']).toBeGreaterThan(0);
  });
});

describe('HubSpot sandbox: communication preferences', () => {
  const sb = createHubSpotSandbox({ tenSecondlyLimit: 100_000 });
  let hs: Client;

  beforeAll(async () => {
    await sb.start();
    sb.seed(hubspotPeople(20));
    hs = client(sb);
  });
  afterAll(() => sb.stop());

  it('v3 definitions and statuses through the SDK', async () => {
    const defs = await hs.communicationPreferences.definitionApi.getPage();
    expect(defs.subscriptionDefinitions.map((d) => [d.id, d.name])).toEqual([
      ['1001', 'Newsletter'],
      ['1002', 'Product Updates'],
      ['1003', 'Events'],
    ]);
    const st = await hs.communicationPreferences.statusApi.getEmailStatus('person3@example.com');
    expect(st.recipient).toBe('person3@example.com');
    // person3 opted out of all email: every type NOT_SUBSCRIBED, portal-wide.
    expect(st.subscriptionStatuses.map((s) => [s.status, s.sourceOfStatus])).toEqual([
      ['NOT_SUBSCRIBED', 'PORTAL_WIDE_STATUS'],
      ['NOT_SUBSCRIBED', 'PORTAL_WIDE_STATUS'],
      ['NOT_SUBSCRIBED', 'PORTAL_WIDE_STATUS'],
    ]);
  });

  it('v3 unsubscribe, then subscribe again is refused with 400', async () => {
    const email = 'v3.person@example.com';
    const sub = await hs.communicationPreferences.statusApi.subscribe({ emailAddress: email, subscriptionId: '1001', legalBasis: 'CONSENT_WITH_NOTICE' as never, legalBasisExplanation: 'signed up' });
    expect(sub.status).toBe('SUBSCRIBED');
    expect(sub.legalBasis).toBe('CONSENT_WITH_NOTICE');
    const again = await apiError(hs.communicationPreferences.statusApi.subscribe({ emailAddress: email, subscriptionId: '1001' }));
    expect(again.code).toBe(400);
    const un = await hs.communicationPreferences.statusApi.unsubscribe({ emailAddress: email, subscriptionId: '1001' });
    expect(un.status).toBe('NOT_SUBSCRIBED');
    const resub = await apiError(hs.communicationPreferences.statusApi.subscribe({ emailAddress: email, subscriptionId: '1001' }));
    expect(resub.code).toBe(400);
    expect(resub.body['category']).toBe('VALIDATION_ERROR');
    expect(sb.state.statuses(email)[0]?.status).toBe('UNSUBSCRIBED');
  });

  it('v4 statuses via apiRequest: read, resubscribe, unsubscribe-all, batch read/write/unsubscribe-all', async () => {
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
      const res = await hs.apiRequest({ method, path, ...(body === undefined ? {} : { body }) });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const email = 'person1@example.com';
    const got = await call('GET', `/communication-preferences/v4/statuses/${encodeURIComponent(email)}?channel=EMAIL`);
    expect(got.status).toBe(200);
    expect(got.json['status']).toBe('COMPLETE');
    const results = got.json['results'] as Record<string, unknown>[];
    expect(results.map((r) => r['subscriptionId'])).toEqual([1001, 1002, 1003]);
    expect(results[0]).toMatchObject({ subscriberIdString: email, channel: 'EMAIL' });

    // v4 can resubscribe someone who unsubscribed (v3 cannot).
    await call('POST', `/communication-preferences/v4/statuses/${email}`, { subscriptionId: 1001, statusState: 'UNSUBSCRIBED', channel: 'EMAIL' });
    const re = await call('POST', `/communication-preferences/v4/statuses/${email}`, {
      subscriptionId: 1001,
      statusState: 'SUBSCRIBED',
      channel: 'EMAIL',
      legalBasis: 'CONSENT_WITH_NOTICE',
      legalBasisExplanation: 'Asked again',
    });
    expect(re.status).toBe(200);
    expect((re.json['results'] as Record<string, unknown>[])[0]).toMatchObject({ status: 'SUBSCRIBED', setStatusSuccessReason: 'RESUBSCRIBE_OCCURRED', legalBasis: 'CONSENT_WITH_NOTICE' });

    const all = await call('POST', `/communication-preferences/v4/statuses/${email}/unsubscribe-all?channel=EMAIL`);
    expect(all.status).toBe(200);
    expect((all.json['results'] as Record<string, unknown>[]).every((r) => r['status'] === 'UNSUBSCRIBED')).toBe(true);
    const contact = await hs.crm.contacts.basicApi.getById('1002', ['email', 'hs_email_optout', 'hs_email_optout_1001']);
    expect(contact.properties['email']).toBe(email);
    expect(contact.properties['hs_email_optout']).toBe('true');
    expect(contact.properties['hs_email_optout_1001']).toBe('true');
    const wide = await call('GET', `/communication-preferences/v4/statuses/${email}/unsubscribe-all?channel=EMAIL`);
    expect(wide.json['results']).toEqual([expect.objectContaining({ status: 'UNSUBSCRIBED', wideStatusType: 'PORTAL_WIDE' })]);

    const br = await call('POST', '/communication-preferences/v4/statuses/batch/read?channel=EMAIL', { inputs: ['person2@example.com', 'person4@example.com', 'not-an-email'] });
    expect(br.status).toBe(207);
    expect((br.json['results'] as Record<string, unknown>[]).map((r) => r['subscriberIdString'])).toEqual(['person2@example.com', 'person4@example.com']);
    expect(br.json['numErrors']).toBe(1);

    const bw = await call('POST', '/communication-preferences/v4/statuses/batch/write', {
      inputs: [
        { subscriberIdString: 'person2@example.com', subscriptionId: 1002, statusState: 'SUBSCRIBED', channel: 'EMAIL', legalBasis: 'CONSENT_WITH_NOTICE', legalBasisExplanation: 'form' },
        { subscriberIdString: 'person4@example.com', subscriptionId: 1002, statusState: 'UNSUBSCRIBED', channel: 'EMAIL' },
      ],
    });
    expect(bw.status).toBe(200);
    expect(sb.state.statuses('person2@example.com')[1]).toMatchObject({ status: 'SUBSCRIBED', legalBasis: 'CONSENT_WITH_NOTICE', legalBasisExplanation: 'form' });
    expect(sb.state.statuses('person4@example.com')[1]?.status).toBe('UNSUBSCRIBED');

    const bu = await call('POST', '/communication-preferences/v4/statuses/batch/unsubscribe-all?channel=EMAIL', { inputs: ['person5@example.com'] });
    expect(bu.status).toBe(200);
    expect(sb.state.wideStatus('person5@example.com').status).toBe('UNSUBSCRIBED');

    const noChannel = await call('GET', `/communication-preferences/v4/statuses/${email}`);
    expect(noChannel.status).toBe(400);
  });

  it('v4 is absent when commPrefsV4 is false', async () => {
    const v3only = createHubSpotSandbox({ commPrefsV4: false });
    await v3only.start();
    try {
      const c = client(v3only);
      const res = await c.apiRequest({ method: 'GET', path: '/communication-preferences/v4/statuses/a@example.com?channel=EMAIL' });
      expect(res.status).toBe(404);
    } finally {
      await v3only.stop();
    }
  });
});

describe('HubSpot sandbox: rate limits', () => {
  it('ten-secondly limit answers 429 TEN_SECONDLY_ROLLING with the rate-limit headers', async () => {
    const sb = createHubSpotSandbox({ tenSecondlyLimit: 5, dailyLimit: 1000 });
    await sb.start();
    try {
      sb.seed(hubspotPeople(3));
      const c = client(sb);
      const raw = await c.apiRequest({ method: 'GET', path: '/crm/v3/objects/contacts?limit=1' });
      expect(raw.status).toBe(200);
      expect(raw.headers.get('x-hubspot-ratelimit-max')).toBe('5');
      expect(raw.headers.get('x-hubspot-ratelimit-remaining')).toBe('4');
      expect(raw.headers.get('x-hubspot-ratelimit-interval-milliseconds')).toBe('10000');
      expect(raw.headers.get('x-hubspot-ratelimit-daily')).toBe('1000');
      expect(raw.headers.get('x-hubspot-ratelimit-daily-remaining')).toBe('999');
      expect(raw.headers.get('x-hubspot-ratelimit-secondly')).not.toBeNull();
      expect(raw.headers.get('x-hubspot-ratelimit-secondly-remaining')).not.toBeNull();
      for (let i = 0; i < 4; i++) await c.crm.contacts.basicApi.getPage(1);
      const e = await apiError(c.crm.contacts.basicApi.getPage(1));
      expect(e.code).toBe(429);
      expect(e.body).toMatchObject({ status: 'error', message: 'You have reached your ten_secondly_rolling limit.', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING' });
      expect(e.headers['x-hubspot-ratelimit-remaining']).toBe('0');
      expect(e.headers['content-type']).toBe('application/json');
    } finally {
      await sb.stop();
    }
  });

  it('search is limited to 5 requests/s: 429 without retries, recovered by the SDK retry decorator', async () => {
    const sb = createHubSpotSandbox({ tenSecondlyLimit: 1000 });
    await sb.start();
    try {
      sb.seed(hubspotPeople(20));
      const req = { filterGroups: [], sorts: [], properties: ['email'], limit: 5, after: '0' };
      const noRetry = client(sb);
      const settled = await Promise.allSettled(Array.from({ length: 7 }, () => noRetry.crm.contacts.searchApi.doSearch(req)));
      const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as ApiErr);
      expect(rejected).toHaveLength(2);
      expect(rejected[0]?.code).toBe(429);
      expect(rejected[0]?.body).toMatchObject({ message: 'You have reached your secondly limit.', errorType: 'RATE_LIMIT', policyName: 'SECONDLY' });

      await new Promise((r) => setTimeout(r, 1100));
      sb.calls.reset();
      const withRetry = client(sb, { numberOfApiCallRetries: 3 });
      const quiet = console.error;
      console.error = () => undefined; // the decorator logs each retry
      try {
        const all = await Promise.all(Array.from({ length: 8 }, () => withRetry.crm.contacts.searchApi.doSearch(req)));
        expect(all.every((r) => r.total === sb.state.count())).toBe(true);
      } finally {
        console.error = quiet;
      }
      const snap = sb.calls.snapshot();
      expect(snap['POST /crm/v3/objects/contacts/search 429']).toBe(3);
      expect(snap['POST /crm/v3/objects/contacts/search 200']).toBe(8);
    } finally {
      await sb.stop();
    }
  });
});

describe('HubSpot sandbox: control API', () => {
  it('seeds from the shared generator ({count, seed}) and resets', async () => {
    const sb = createHubSpotSandbox();
    await sb.start();
    try {
      const post = (path: string, body: unknown) => fetch(`${sb.url}/__sandbox${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const res = await post('/seed', { count: 500, seed: 7, now: '2025-06-01T00:00:00Z' });
      expect(res.status).toBe(200);
      const { created } = (await res.json()) as { created: number };
      expect(created).toBe(sb.state.count());
      expect(created).toBeGreaterThan(200);
      const first = sb.state.contact('1001');
      const got = (await (await fetch(`${sb.url}/__sandbox/state/contacts?email=${encodeURIComponent(String(first?.properties['email']))}`)).json()) as { contacts: { id: string }[]; statuses: unknown[] };
      expect(got.contacts.map((c) => c.id)).toContain('1001');
      expect(got.statuses).toHaveLength(3);
      expect((await post('/reset', {})).status).toBe(200);
      expect(sb.state.count()).toBe(0);
      const faults = await post('/faults', { latencyMs: 5 });
      expect(((await faults.json()) as { latencyMs: number }).latencyMs).toBe(5);
    } finally {
      await sb.stop();
    }
  });
});

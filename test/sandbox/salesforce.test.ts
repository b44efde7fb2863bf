/**
 * The Salesforce sandbox through the real jsforce 3.10.16: SOAP and OAuth 2.0 logins, session
 * expiry and re-login, SOQL query/queryMore, sObject Collections, describe, daily API limit,
 * injected faults and the control API.
 */
import { Connection } from 'jsforce';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSalesforceSandbox, type SalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import type { SeedPerson, SeedPresence } from '../../src/sandbox/seed-types.js';

const VERSION = '59.0';
const T0 = Date.parse('2025-06-01T00:00:00Z');

interface SfError {
  name: string;
  errorCode?: string;
  message: string;
}

async function failure(p: PromiseLike<unknown>): Promise<SfError> {
  try {
    await p;
  } catch (e) {
    return e as SfError;
  }
  throw new Error('expected the call to fail');
}

/**
 * The REST API's SaveResult errors carry `statusCode` (jsforce's typings say `errorCode`, which
 * is the SOAP name): read it through this.
 */
function statusCode(r: { errors: unknown[] } | undefined): string | undefined {
  return (r?.errors[0] as { statusCode?: string } | undefined)?.statusCode;
}

function presence(emails: string[], extra: Partial<SeedPresence> = {}): SeedPresence {
  return {
    emails,
    optedOut: false,
    optedOutAt: null,
    subscribedAt: null,
    purposes: {},
    hardBounced: false,
    complained: false,
    erasureRequested: false,
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...extra,
  };
}

/** n plain people (indexes chosen by the caller: index % 5 === 4 becomes a Lead). */
function people(n: number, from = 0, extra: (i: number) => Partial<SeedPresence> = () => ({})): SeedPerson[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    return {
      index: i,
      email: `person${i}@example.com`,
      firstName: 'P',
      lastName: `Number${i}`,
      phone: null,
      presence: { salesforce: presence([`person${i}@example.com`], { updatedAt: new Date(T0 - (n - k) * 60_000).toISOString(), ...extra(i) }) },
    };
  });
}

async function login(sb: SalesforceSandbox): Promise<Connection> {
  const conn = new Connection({ loginUrl: sb.url, version: VERSION });
  await conn.login(sb.credentials.username, sb.credentials.password);
  return conn;
}

function callsTo(sb: SalesforceSandbox, key: string): number {
  return sb.calls.snapshot()[key] ?? 0;
}

const API = `/services/data/v${VERSION}`;

describe('Salesforce sandbox: sessions', () => {
  let clock = T0;
  const sb = createSalesforceSandbox({ now: () => clock, tokenTtlMs: 60_000 });
  beforeAll(async () => {
    await sb.start();
    sb.seed(people(10));
  });
  afterAll(() => sb.stop());

  it('logs in with SOAP login() (no client id) and rejects a bad password with INVALID_LOGIN', async () => {
    const conn = new Connection({ loginUrl: sb.url, version: VERSION });
    const info = await conn.login(sb.credentials.username, sb.credentials.password);
    expect(info.organizationId).toBe(sb.orgId);
    expect(conn.instanceUrl).toBe(sb.url);
    // 10 people: 8 Contacts, 2 Leads (index 4 and 9); index 4 is converted, with its Contact.
    const res = await conn.query<{ Id: string }>('SELECT Id FROM Contact');
    expect(res.totalSize).toBe(9);

    const bad = new Connection({ loginUrl: sb.url, version: VERSION });
    const err = await failure(bad.login(sb.credentials.username, 'wrong'));
    expect(err.message).toMatch(/^INVALID_LOGIN: Invalid username, password, security token; or user locked out\./);
  });

  it('logs in with the OAuth 2.0 username-password flow and rejects bad credentials with invalid_grant', async () => {
    const { loginUrl, clientId, clientSecret, username, password } = sb.credentials;
    const conn = new Connection({ oauth2: { loginUrl, clientId, clientSecret }, version: VERSION });
    const info = await conn.login(username, password);
    expect(info.url).toBe(`${sb.url}/id/${sb.orgId}/${sb.userId}`);
    expect((await conn.query('SELECT Id FROM Lead')).totalSize).toBe(2);

    const err = await failure(new Connection({ oauth2: { loginUrl, clientId, clientSecret }, version: VERSION }).login(username, 'nope'));
    expect(err.name).toBe('invalid_grant');
    expect(err.message).toBe('authentication failure');
    const err2 = await failure(new Connection({ oauth2: { loginUrl, clientId, clientSecret: 'bad' }, version: VERSION }).login(username, password));
    expect(err2.name).toBe('invalid_client');
  });

  it('authorizes with client credentials', async () => {
    const { loginUrl, clientId, clientSecret } = sb.credentials;
    const conn = new Connection({ oauth2: { loginUrl, clientId, clientSecret }, version: VERSION });
    const info = await conn.authorize({ grant_type: 'client_credentials' });
    expect(info.organizationId).toBe(sb.orgId);
    expect((await conn.query('SELECT Id FROM Contact')).totalSize).toBe(9);
  });

  it('every data call needs a valid Bearer token', async () => {
    const res = await fetch(`${sb.url}${API}/query?q=${encodeURIComponent('SELECT Id FROM Contact')}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual([{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
  });

  it('an expired session makes jsforce log in again (password flow) and retry the call', async () => {
    const conn = await login(sb);
    const before = sb.logins;
    clock += 61_000; // past the token TTL
    const res = await conn.query('SELECT Id FROM Contact');
    expect(res.totalSize).toBe(9);
    expect(sb.logins).toBe(before + 1);
    expect(callsTo(sb, `GET ${API}/query 401`)).toBeGreaterThanOrEqual(1);
  });

  it('client credentials: jsforce needs a refreshFn to recover from an expired session', async () => {
    const { loginUrl, clientId, clientSecret } = sb.credentials;
    const plain = new Connection({ oauth2: { loginUrl, clientId, clientSecret }, version: VERSION });
    await plain.authorize({ grant_type: 'client_credentials' });
    sb.expireSessions();
    const err = await failure(plain.query('SELECT Id FROM Contact'));
    expect(err.message).toMatch(/No refresh token found/);

    const conn = new Connection({
      oauth2: { loginUrl, clientId, clientSecret },
      version: VERSION,
      refreshFn: (c, callback) => {
        c.authorize({ grant_type: 'client_credentials' }).then(
          () => callback(null, c.accessToken ?? undefined),
          (e: Error) => callback(e),
        );
      },
    });
    await conn.authorize({ grant_type: 'client_credentials' });
    sb.expireSessions();
    expect((await conn.query('SELECT Id FROM Contact')).totalSize).toBe(9);
  });
});

describe('Salesforce sandbox: SOQL queries', () => {
  let clock = T0;
  const sb = createSalesforceSandbox({ now: () => clock });
  let conn: Connection;
  beforeAll(async () => {
    await sb.start();
    // 5,000 people: 4,000 Contacts, 1,000 Leads (every 5th), 200 of them converted (+ a Contact each).
    sb.seed(people(5000, 0, (i) => ({ optedOut: i % 7 === 0, hardBounced: i % 101 === 0 })));
    conn = await login(sb);
  });
  afterAll(() => sb.stop());

  it('autoFetch returns every record exactly once across several batches (queryMore via nextRecordsUrl)', async () => {
    sb.calls.reset();
    const res = await conn.query<{ Id: string; Email: string }>('SELECT Id, Email FROM Contact').execute({ autoFetch: true, maxFetch: 1e9 });
    expect(res.totalSize).toBe(4200);
    expect(res.records).toHaveLength(4200);
    expect(new Set(res.records.map((r) => r.Id)).size).toBe(4200);
    expect(callsTo(sb, `GET ${API}/query 200`)).toBe(1);
    expect(callsTo(sb, `GET ${API}/query/:locator 200`)).toBe(2); // 2000 + 2000 + 200
  });

  it('honours Sforce-Query-Options batchSize (clamped to 200..2000)', async () => {
    const page = await conn.request<{ records: unknown[]; nextRecordsUrl: string; done: boolean }>({
      method: 'GET',
      url: `${API}/query?q=${encodeURIComponent('SELECT Id FROM Contact')}`,
      headers: { 'Sforce-Query-Options': 'batchSize=500' },
    });
    expect(page.records).toHaveLength(500);
    expect(page.done).toBe(false);
    expect(page.nextRecordsUrl).toMatch(new RegExp(`^${API.replace(/\./g, '\\.')}/query/01g[0-9A-Za-z]{15}-500$`));

    sb.calls.reset();
    const all = await conn.query('SELECT Id FROM Lead').execute({ autoFetch: true, maxFetch: 1e9, headers: { 'Sforce-Query-Options': 'batchSize=50' } });
    expect(all.records).toHaveLength(1000);
    expect(callsTo(sb, `GET ${API}/query/:locator 200`)).toBe(4); // 200 a batch
  });

  it('serves incremental pulls on SystemModstamp with the (stamp, Id) cursor form, ties included', async () => {
    // Touch 450 contacts at the same instant: all share one SystemModstamp.
    clock = T0 + 3_600_000;
    const some = await conn.query<{ Id: string }>('SELECT Id FROM Contact ORDER BY Id LIMIT 450');
    expect(some.records).toHaveLength(450);
    await conn.sobject('Contact').update(
      some.records.map((r) => ({ Id: r.Id, DoNotCall: true })),
      { allowRecursive: true },
    );
    // Page through with LIMIT 100 and the cursor; every touched contact exactly once.
    let cursor = { stamp: '2025-06-01T00:30:00.000Z', id: '000000000000000' };
    const seen: string[] = [];
    for (let guard = 0; guard < 20; guard++) {
      const q =
        `SELECT Id, SystemModstamp FROM Contact WHERE (SystemModstamp > ${cursor.stamp} OR (SystemModstamp = ${cursor.stamp} AND Id > '${cursor.id}')) ` +
        'ORDER BY SystemModstamp, Id LIMIT 100';
      const page = await conn.query<{ Id: string; SystemModstamp: string }>(q);
      if (page.records.length === 0) break;
      for (const r of page.records) seen.push(r.Id);
      const last = page.records[page.records.length - 1] as { Id: string; SystemModstamp: string };
      cursor = { stamp: new Date(last.SystemModstamp.replace('+0000', 'Z')).toISOString(), id: last.Id };
    }
    expect(seen).toHaveLength(450);
    expect(new Set(seen)).toEqual(new Set(some.records.map((r) => r.Id)));
    const stamps = await conn.query<{ SystemModstamp: string }>(`SELECT SystemModstamp FROM Contact WHERE SystemModstamp >= 2025-06-01T01:00:00Z`);
    expect(stamps.totalSize).toBe(450);
    expect(stamps.records.every((r) => r.SystemModstamp === '2025-06-01T01:00:00.000+0000')).toBe(true);
    // The same changes through GET /sobjects/Contact/updated.
    const updated = await conn.sobject('Contact').updated('2025-06-01T00:30:00Z', '2025-06-01T02:00:00Z');
    expect(new Set(updated.ids)).toEqual(new Set(some.records.map((r) => r.Id)));
  });

  it('filters with IN, LIKE, NOT, booleans, null, relationships and COUNT()', async () => {
    const optedOut = await conn.query('SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = true');
    const expected = sb.state.raw.contacts.rows.filter((r) => r['HasOptedOutOfEmail'] === true).length;
    expect(optedOut.totalSize).toBe(expected);
    const byEmail = await conn.query<{ Email: string }>("SELECT Id, Email FROM Contact WHERE Email IN ('PERSON1@example.com', 'person2@example.com', 'nobody@x.org')");
    expect(byEmail.records.map((r) => r.Email).sort()).toEqual(['person1@example.com', 'person2@example.com']);
    const like = await conn.query("SELECT Id FROM Lead WHERE Email LIKE 'person1%' AND IsConverted = false");
    expect(like.totalSize).toBe(sb.state.raw.leads.rows.filter((r) => String(r['Email']).startsWith('person1') && r['IsConverted'] === false).length);
    const bounced = await conn.query('SELECT Id FROM Contact WHERE NOT (EmailBouncedReason = null)');
    expect(bounced.totalSize).toBe(sb.state.raw.contacts.rows.filter((r) => r['EmailBouncedReason'] !== null).length);
    const desc = await conn.query<{ LastName: string }>('SELECT LastName FROM Contact ORDER BY LastName DESC LIMIT 2 OFFSET 1');
    // Text sorts as text; Number999 is a Lead.
    expect(desc.records.map((r) => r.LastName)).toEqual(['Number997', 'Number996']);
    const rel = await conn.query<{ Individual: unknown }>("SELECT Id, Individual.ShouldForget FROM Contact WHERE Email = 'person1@example.com'");
    expect(rel.records[0]).toHaveProperty('Individual', null);
    // Person 0 opted out (index % 7 === 0) and, as every 3rd opted-out person, has an Individual.
    const rel0 = await conn.query<{ Individual: { ShouldForget: boolean } | null }>("SELECT Id, Individual.ShouldForget, Individual.HasOptedOutSolicit FROM Contact WHERE Email = 'person0@example.com'");
    expect(rel0.records[0]?.Individual).toMatchObject({ attributes: { type: 'Individual' }, ShouldForget: false, HasOptedOutSolicit: true });
  });

  it('answers INVALID_FIELD, INVALID_TYPE and MALFORMED_QUERY like Salesforce', async () => {
    const e1 = await failure(conn.query('SELECT Id, Foo FROM Contact'));
    expect(e1.errorCode).toBe('INVALID_FIELD');
    expect(e1.message).toContain("No such column 'Foo' on entity 'Contact'");
    expect(e1.message).toContain('ERROR at Row:1:Column:12');
    const e2 = await failure(conn.query('SELECT Id FROM Contacts'));
    expect(e2.errorCode).toBe('INVALID_TYPE');
    const e3 = await failure(conn.query('SELECT Id FROM Contact WHERE Email = 1 AND DoNotCall = true OR HasOptedOutOfEmail = true'));
    expect(e3.errorCode).toBe('MALFORMED_QUERY');
    const e4 = await failure(conn.query("SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'"));
    expect(e4.errorCode).toBe('INVALID_FIELD');
    expect(e4.message).toContain('must be of type dateTime and should not be enclosed in quotes');
    const e5 = await failure(conn.query('SELECT Id FROM Contact WHERE'));
    expect(e5.errorCode).toBe('MALFORMED_QUERY');
    const e6 = await failure(conn.queryMore(`${API}/query/01g5g0000000ZZZAAA-2000`));
    expect(e6.errorCode).toBe('INVALID_QUERY_LOCATOR');
  });
});

describe('Salesforce sandbox: sObject Collections and single records', () => {
  const sb = createSalesforceSandbox();
  let conn: Connection;
  let ids: string[];
  beforeAll(async () => {
    await sb.start();
    sb.seed(people(600, 0, () => ({})).map((p) => ({ ...p, index: p.index * 5 }))); // all Contacts
    conn = await login(sb);
    ids = (await conn.query<{ Id: string }>('SELECT Id FROM Contact ORDER BY Id').execute({ autoFetch: true })).records.map((r) => r.Id);
  });
  afterAll(() => sb.stop());

  it('updates 450 records in 3 calls with allowRecursive, and rejects a raw 201-record call', async () => {
    sb.calls.reset();
    const results = await conn.sobject('Contact').update(
      ids.slice(0, 450).map((Id) => ({ Id, HasOptedOutOfEmail: true })),
      { allowRecursive: true },
    );
    expect(results).toHaveLength(450);
    expect(results.every((r) => r.success)).toBe(true);
    expect(callsTo(sb, `PATCH ${API}/composite/sobjects 200`)).toBe(3);
    expect(sb.state.contact(ids[449] as string)?.['HasOptedOutOfEmail']).toBe(true);
    expect(sb.state.contact(ids[450] as string)?.['HasOptedOutOfEmail']).toBe(false);

    const err = await failure(
      conn.requestPatch(`${API}/composite/sobjects`, {
        allOrNone: false,
        records: ids.slice(0, 201).map((id) => ({ id, attributes: { type: 'Contact' }, DoNotCall: true })),
      }),
    );
    expect(err.errorCode).toBe('EXCEEDED_ID_LIMIT');
    expect(sb.state.contact(ids[0] as string)?.['DoNotCall']).toBe(false);
  });

  it('reports per-record failures in order: unknown id, deleted id, read-only field, injected lock errors', async () => {
    const [a, b, c, d] = ids.slice(500, 504) as [string, string, string, string];
    await conn.sobject('Contact').destroy(d);
    const results = await conn.sobject('Contact').update([
      { Id: a, DoNotCall: true },
      { Id: '0035g000000ZZZZAAA', DoNotCall: true },
      { Id: b, IsEmailBounced: true } as never,
      { Id: d, DoNotCall: true },
      { Id: 'garbage', DoNotCall: true },
      { Id: c, Email: 'not-an-email' },
    ]);
    expect(results.map((r) => (r.success ? 'ok' : statusCode(r)))).toEqual([
      'ok',
      'INVALID_CROSS_REFERENCE_KEY',
      'INVALID_FIELD_FOR_INSERT_UPDATE',
      'ENTITY_IS_DELETED',
      'MALFORMED_ID',
      'INVALID_EMAIL_ADDRESS',
    ]);
    expect(results[0]).toEqual({ id: a, success: true, errors: [] });

    sb.faults.set({ partialFailureRate: 0.3 });
    try {
      const batch = ids.slice(0, 200);
      const res = await conn.sobject('Contact').update(batch.map((Id) => ({ Id, HasOptedOutOfFax: true })));
      const failed = res.filter((r) => !r.success);
      expect(failed.length).toBeGreaterThan(20);
      expect(failed.length).toBeLessThan(120);
      for (const f of failed) expect(statusCode(f)).toBe('UNABLE_TO_LOCK_ROW');
      res.forEach((r, k) => expect(sb.state.contact(batch[k] as string)?.['HasOptedOutOfFax']).toBe(r.success));
    } finally {
      sb.faults.set({ partialFailureRate: 0 });
    }
  });

  it('allOrNone rolls every record back when one fails', async () => {
    const batch = ids.slice(300, 305);
    const before = batch.map((id) => sb.state.contact(id)?.['SystemModstamp']);
    const res = await conn.sobject('Contact').update(
      [...batch.map((Id) => ({ Id, DoNotCall: true })), { Id: '0035g000000ZZZZAAA', DoNotCall: true }],
      { allOrNone: true },
    );
    expect(res.every((r) => !r.success)).toBe(true);
    expect(res.slice(0, 5).every((r) => statusCode(r) === 'ALL_OR_NONE_OPERATION_ROLLED_BACK')).toBe(true);
    expect(statusCode(res[5])).toBe('INVALID_CROSS_REFERENCE_KEY');
    expect(batch.map((id) => sb.state.contact(id)?.['DoNotCall'])).toEqual([false, false, false, false, false]);
    expect(batch.map((id) => sb.state.contact(id)?.['SystemModstamp'])).toEqual(before);
  });

  it('single-record PATCH answers 204, bumps SystemModstamp, and 404s unknown ids', async () => {
    const id = ids[10] as string;
    const before = String(sb.state.contact(id)?.['SystemModstamp']);
    const res = await conn.sobject('Contact').update({ Id: id, HasOptedOutOfEmail: true });
    expect(res).toEqual({ id, success: true, errors: [] });
    const after = sb.state.contact(id);
    expect(after?.['HasOptedOutOfEmail']).toBe(true);
    expect(String(after?.['SystemModstamp']) >= before).toBe(true);
    expect(after?.['LastModifiedDate']).toBe(after?.['SystemModstamp']);
    const err = await failure(conn.sobject('Contact').update({ Id: '0035g000000ZZZZAAA', DoNotCall: true }));
    expect(err.errorCode).toBe('NOT_FOUND');
  });

  it('retrieves many, deletes many (erasure) and shows deleted rows to queryAll only', async () => {
    const [x, y] = ids.slice(550, 552) as [string, string];
    const got = await conn.sobject('Contact').retrieve([x, y, '0035g000000ZZZZAAA'], { fields: ['Id', 'Email'] });
    expect(got.map((r) => (r as { Id?: string } | null)?.Id ?? null)).toEqual([x, y, null]);
    const del = await conn.sobject('Contact').destroy([x, y]);
    expect(del).toEqual([
      { id: x, success: true, errors: [] },
      { id: y, success: true, errors: [] },
    ]);
    expect((await conn.query(`SELECT Id FROM Contact WHERE Id IN ('${x}', '${y}')`)).totalSize).toBe(0);
    const all = await conn.query<{ IsDeleted: boolean }>(`SELECT Id, IsDeleted FROM Contact WHERE Id IN ('${x}', '${y}')`).scanAll(true).execute();
    expect(all.records.map((r) => r.IsDeleted)).toEqual([true, true]);
  });

  it('creates Individuals and consent records through collections', async () => {
    const [ind] = await conn.sobject('Individual').create([{ FirstName: 'A', LastName: 'B' }]);
    expect(ind?.success).toBe(true);
    const [cptc] = await conn.sobject('ContactPointTypeConsent').create([
      { Name: 'Email consent', PartyId: ind?.id, ContactPointType: 'Email', PrivacyConsentStatus: 'OptIn', CaptureDate: '2025-01-02T03:04:05.000Z', CaptureSource: 'API' },
    ]);
    expect(cptc?.success).toBe(true);
    const bad = await conn.sobject('ContactPointTypeConsent').create([{ Name: 'x', PartyId: ind?.id, PrivacyConsentStatus: 'Maybe' }]);
    expect(statusCode(bad[0])).toBe('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST');
    const q = await conn.query<{ CaptureDate: string }>(`SELECT Id, CaptureDate, Party.ShouldForget FROM ContactPointTypeConsent WHERE PartyId = '${ind?.id ?? ''}'`);
    expect(q.records[0]?.CaptureDate).toBe('2025-01-02T03:04:05.000+0000');
  });
});

describe('Salesforce sandbox: describe', () => {
  const sb = createSalesforceSandbox();
  const off = createSalesforceSandbox({ privacyFeatures: false });
  beforeAll(async () => {
    await sb.start();
    await off.start();
  });
  afterAll(async () => {
    await sb.stop();
    await off.stop();
  });

  it('describes Contact fields and lists Individual only with privacy features on', async () => {
    const conn = await login(sb);
    const contact = await conn.describe('Contact');
    const field = (n: string): { updateable: boolean; type: string } | undefined => contact.fields.find((f) => f.name === n);
    expect(field('HasOptedOutOfEmail')).toMatchObject({ type: 'boolean', updateable: true });
    expect(field('IsEmailBounced')).toMatchObject({ type: 'boolean', updateable: false });
    expect(field('IndividualId')).toMatchObject({ type: 'reference' });
    expect(contact.keyPrefix).toBe('003');
    const global = await conn.describeGlobal();
    expect(global.sobjects.map((s) => s.name)).toEqual(expect.arrayContaining(['Contact', 'Lead', 'Individual', 'ContactPointTypeConsent', 'DataUsePurpose']));
    const cptc = await conn.describe('ContactPointTypeConsent');
    expect(cptc.fields.find((f) => f.name === 'PrivacyConsentStatus')?.picklistValues?.map((p) => p.value)).toEqual(['OptIn', 'OptOut', 'Seen', 'NotSeen']);

    const plain = await login(off);
    expect((await plain.describeGlobal()).sobjects.map((s) => s.name)).toEqual(['Contact', 'Lead']);
    expect((await plain.describe('Contact')).fields.some((f) => f.name === 'IndividualId')).toBe(false);
    expect((await failure(plain.query('SELECT Id FROM Individual'))).errorCode).toBe('INVALID_TYPE');
    expect((await failure(plain.describe('Individual'))).errorCode).toBe('NOT_FOUND');
  });
});

describe('Salesforce sandbox: daily API limit and faults', () => {
  const sb = createSalesforceSandbox({ dailyApiLimit: 6 });
  beforeAll(async () => {
    await sb.start();
    sb.seed(people(5));
  });
  afterAll(() => sb.stop());

  it('counts calls in Sforce-Limit-Info and answers 403 REQUEST_LIMIT_EXCEEDED past the limit', async () => {
    const conn = await login(sb); // the login does not count
    await conn.query('SELECT Id FROM Contact');
    expect(conn.limitInfo).toEqual({ apiUsage: { used: 1, limit: 6 } });
    const limits = await conn.limits();
    expect(limits.DailyApiRequests).toEqual({ Max: 6, Remaining: 4 });
    const raw = await fetch(`${sb.url}${API}/sobjects`, { headers: { Authorization: `Bearer ${conn.accessToken ?? ''}` } });
    expect(raw.headers.get('sforce-limit-info')).toBe('api-usage=3/6');
    for (let i = 0; i < 3; i++) await conn.query('SELECT Id FROM Contact');
    const err = await failure(conn.query('SELECT Id FROM Contact'));
    expect(err.errorCode).toBe('REQUEST_LIMIT_EXCEEDED');
    expect(err.message).toBe('TotalRequests Limit exceeded.');
    expect(conn.limitInfo).toEqual({ apiUsage: { used: 6, limit: 6 } });
    sb.limits.setUsed(0);
    expect((await conn.query('SELECT Id FROM Contact')).totalSize).toBe(5);
  });

  it('injects 500 UNKNOWN_EXCEPTION, 503 SERVER_UNAVAILABLE and connection resets', async () => {
    sb.limits.max = 1000;
    const conn = await login(sb);
    const url = `${sb.url}${API}/limits`;
    const headers = { Authorization: `Bearer ${conn.accessToken ?? ''}` };
    sb.faults.set({ errorRate: 1 });
    let res = await fetch(url, { headers });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { errorCode: string }[])[0]?.errorCode).toBe('UNKNOWN_EXCEPTION');
    sb.faults.set({ errorRate: 0, rateLimitRate: 1 });
    res = await fetch(url, { headers });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { errorCode: string }[])[0]?.errorCode).toBe('SERVER_UNAVAILABLE');
    sb.faults.set({ rateLimitRate: 0, resetRate: 1 });
    await expect(fetch(url, { headers })).rejects.toThrow();
    sb.faults.set({ resetRate: 0, latencyMs: 50 });
    const t = Date.now();
    res = await fetch(url, { headers });
    expect(res.status).toBe(200);
    expect(Date.now() - t).toBeGreaterThanOrEqual(45);
    sb.faults.set({ latencyMs: 0 });
  });
});

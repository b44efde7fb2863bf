/** SendGrid connector edge cases against nock (exact requests, odd answers). */
import nock from 'nock';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSendGridConnector, sendgridSettings } from '../../connectors/sendgrid/index.js';
import { isInvalidAddressDrop } from '../../connectors/sendgrid/webhook.js';
import type { Connector, PullPage } from '../../src/connectors/contract.js';
import { changeKey, type Change } from '../../src/model/index.js';

const API = 'https://api.sendgrid.com';
const NOW = Date.parse('2025-06-01T00:00:00.000Z');
const NOW_S = NOW / 1000;

function connector(extra: Record<string, unknown> = {}): Connector {
  const settings = sendgridSettings.parse({ apiKey: 'SG.test-key', purposes: { '7': 'newsletter' }, readAttempts: 1, ...extra });
  return createSendGridConnector(settings, { id: 'sg', purposes: ['newsletter'], logger: pino({ level: 'silent' }), baseDir: '.' }, { now: () => NOW, sleep: () => Promise.resolve() });
}

function denyAll(email: string): Change {
  const c: Omit<Change, 'key'> = { connectorId: 'sg', recordId: email, subject: email, op: 'set_consent', channel: 'email', purpose: '*', target: 'denied', rule: null, decidedBy: null, meta: {} };
  return { key: changeKey(c), ...c };
}

beforeEach(() => {
  nock.disableNetConnect();
});
afterEach(() => {
  nock.cleanAll();
  nock.enableNetConnect();
});

describe('sendgrid (nock)', () => {
  it('pages with the window, maps 4.x.x bounces as blocked, normalizes addresses, keeps a missing group time null', async () => {
    const start = NOW_S - 730 * 86_400;
    const scope = nock(API, { reqheaders: { authorization: 'Bearer SG.test-key' } })
      .get('/v3/asm/suppressions')
      .reply(200, [
        { email: 'Grp@Example.com', group_id: 7, group_name: 'News' },
        { email: 'other@example.com', group_id: 8, group_name: 'Unmapped', created_at: NOW_S - 5 },
      ])
      .get('/v3/suppression/unsubscribes')
      .query({ start_time: start, end_time: NOW_S, limit: 2, offset: 0 })
      .reply(200, [])
      .get('/v3/suppression/bounces')
      .query({ start_time: start, end_time: NOW_S, limit: 2, offset: 0 })
      .reply(200, [
        { created: NOW_S - 10, email: ' Hard@Example.COM ', reason: '550 5.1.1 unknown user', status: '5.1.1' },
        { created: NOW_S - 20, email: 'soft@example.com', reason: '452 4.2.2 mailbox full', status: '4.2.2' },
      ])
      .get('/v3/suppression/bounces')
      .query({ start_time: start, end_time: NOW_S, limit: 2, offset: 2 })
      .reply(200, [{ created: NOW_S - 30, email: 'nostatus@example.com', reason: '' }])
      .get('/v3/suppression/blocks')
      .query(true)
      .reply(200, [])
      .get('/v3/suppression/spam_reports')
      .query(true)
      .reply(200, [])
      .get('/v3/suppression/invalid_emails')
      .query(true)
      .reply(200, []);
    const pages: PullPage[] = [];
    for await (const p of connector({ pageSize: 2 }).pull(null)) pages.push(p);
    expect(scope.isDone()).toBe(true);
    const obs = pages.flatMap((p) => p.observations);
    expect(obs.map((o) => [o.subject, o.kind, o.purpose, o.reason, o.statedAt])).toEqual([
      ['grp@example.com', 'consent', 'newsletter', null, null],
      ['hard@example.com', 'suppression', '*', 'hard_bounce', new Date((NOW_S - 10) * 1000).toISOString()],
      ['soft@example.com', 'suppression', '*', 'blocked', new Date((NOW_S - 20) * 1000).toISOString()],
      ['nostatus@example.com', 'suppression', '*', 'hard_bounce', new Date((NOW_S - 30) * 1000).toISOString()],
    ]);
    expect(pages.flatMap((p) => p.records).map((r) => r.recordId)).toEqual(['grp@example.com', 'hard@example.com', 'nostatus@example.com', 'other@example.com', 'soft@example.com']);
  });

  it('bisects a 400 so only the refused address fails', async () => {
    const bodies: string[][] = [];
    nock(API)
      .post('/v3/asm/suppressions/global', (b: { recipient_emails: string[] }) => {
        bodies.push(b.recipient_emails);
        return true;
      })
      .times(5)
      .reply(() => {
        // The body matcher above saw this request's body last.
        const emails = bodies[bodies.length - 1] ?? [];
        return emails.includes('d@example.com') ? [400, { errors: [{ field: 'recipient_emails', message: 'email address is invalid' }] }, {}] : [201, { recipient_emails: emails }, {}];
      });
    const changes = ['a', 'b', 'c', 'd'].map((x) => denyAll(`${x}@example.com`));
    const results = await connector().push(changes);
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'failed']);
    expect(results[3]).toMatchObject({ code: 'SENDGRID_HTTP_400', reason: expect.stringContaining('email address is invalid') });
    expect(bodies.map((b) => b.length)).toEqual([4, 2, 2, 1, 1]);
  });

  it('429 with Retry-After, 503 and a reset connection are retryable; 403 is not', async () => {
    nock(API).post('/v3/asm/suppressions/global').reply(429, { errors: [{ field: null, message: 'too many requests' }] }, { 'Retry-After': '7' });
    expect(await connector().push([denyAll('a@example.com')])).toEqual([{ key: denyAll('a@example.com').key, status: 'retry', reason: expect.stringContaining('429'), retryAfterMs: 7000 }]);
    nock(API).post('/v3/asm/suppressions/global').reply(429, { errors: [{ field: null, message: 'too many requests' }] }, { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(NOW_S + 30), 'X-RateLimit-Limit': '600' });
    const [r429] = await connector().push([denyAll('a@example.com')]);
    expect(r429).toMatchObject({ status: 'retry', retryAfterMs: 30_025 });
    nock(API).post('/v3/asm/suppressions/global').reply(503, { errors: [{ field: null, message: 'service unavailable' }] });
    expect((await connector().push([denyAll('a@example.com')]))[0]).toMatchObject({ status: 'retry' });
    nock(API).post('/v3/asm/suppressions/global').replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    expect((await connector().push([denyAll('a@example.com')]))[0]).toMatchObject({ status: 'retry', reason: expect.stringContaining('ECONNRESET') });
    nock(API).post('/v3/asm/suppressions/global').reply(403, { errors: [{ field: null, message: 'access forbidden' }] });
    expect((await connector().push([denyAll('a@example.com')]))[0]).toMatchObject({ status: 'failed', code: 'SENDGRID_HTTP_403', reason: expect.stringContaining('access forbidden') });
  });

  it('a grant to a group that no longer exists fails (SendGrid answers 404)', async () => {
    nock(API).delete('/v3/asm/groups/7/suppressions/a%40example.com').reply(404, { errors: [{ field: null, message: 'Group not found' }] });
    nock(API).get('/v3/asm/suppressions/global/a%40example.com').reply(200, {});
    const c: Omit<Change, 'key'> = { connectorId: 'sg', recordId: 'a@example.com', subject: 'a@example.com', op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'granted', rule: null, decidedBy: null, meta: {} };
    const [r] = await connector().push([{ key: changeKey(c), ...c }]);
    expect(r).toMatchObject({ status: 'failed', code: 'SENDGRID_HTTP_404' });
  });

  it('dropped reasons: only an invalid address counts', () => {
    expect(isInvalidAddressDrop('Invalid')).toBe(true);
    expect(isInvalidAddressDrop('invalid email address')).toBe(true);
    expect(isInvalidAddressDrop('Invalid SMTPAPI header')).toBe(false);
    expect(isInvalidAddressDrop('Bounced Address')).toBe(false);
    expect(isInvalidAddressDrop(undefined)).toBe(false);
  });
});

import { readFileSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Connector } from '../../src/connectors/contract.js';
import { FIXTURES, change, csv, pullAll, tempDir } from '../fixtures/csv/helpers.js';

const NOW = new Date('2025-06-01T12:00:00.000Z');
const HEADER = 'email,channel,purpose,state,stated_at,evidence,notes\n';
const ROWS = [
  'ann@example.com,email,weekly,subscribed,2024-01-01,form #1,"keep ""me"" , exactly"\n',
  'bob@example.com,email,,subscribed,2024-01-01,form #2,\n',
  'Bob@Example.com,email,weekly,yes,,,duplicate of bob\n',
  'carol@example.com,email,,unsubscribed,2024-02-02,link,\n',
  'broken-row,email,,denied,,,\n',
  'dave@example.com,email,,bounced,2024-03-03,,\n',
  'dave@example.com,email,weekly,subscribed,2024-01-01,form,\n',
];

function setup(content = HEADER + ROWS.join('')): { dir: string; path: string; connector: (opts?: Parameters<typeof csv>[1]) => Connector } {
  const dir = tempDir();
  const path = join(dir, 'list.csv');
  writeFileSync(path, content);
  return { dir, path, connector: (opts = {}) => csv({ path: 'list.csv', purposes: { weekly: 'newsletter' } }, { baseDir: dir, now: () => NOW, ...opts }) };
}

const consent = (recordId: string, purpose: string, target: 'granted' | 'denied') => change({ recordId, op: 'set_consent', purpose, target, rule: 'R1-denial-sticky', decidedBy: 'obs9' });

describe('csv push', () => {
  it('rewrites matching rows, appends the rest, leaves every other row byte for byte', async () => {
    const { path, connector } = setup();
    const c = connector();
    const changes = [consent('bob@example.com', 'newsletter', 'denied'), consent('carol@example.com', '*', 'denied'), consent('erin@example.com', 'newsletter', 'denied')];
    const results = await c.push(changes);
    expect(results.map((r) => [r.key, r.status])).toEqual(changes.map((ch) => [ch.key, 'ok']));
    expect(results[0]).toMatchObject({ snapshot: { subject: 'bob@example.com', consent: { 'email:*': 'granted', 'email:newsletter': 'denied' } } });
    expect(results[2]).toMatchObject({ snapshot: { subject: 'erin@example.com', consent: { 'email:newsletter': 'denied' } } });
    expect(readFileSync(path, 'utf8')).toBe(
      HEADER +
        ROWS[0] +
        ROWS[1] +
        'Bob@Example.com,email,weekly,unsubscribed,2025-06-01T12:00:00.000Z,consentd:R1-denial-sticky:obs9,duplicate of bob\n' +
        ROWS.slice(3).join('') +
        'erin@example.com,email,weekly,unsubscribed,2025-06-01T12:00:00.000Z,consentd:R1-denial-sticky:obs9,\n',
    );
  });

  it('is idempotent: the same changes twice give the same file (and the second push does not touch it)', async () => {
    const { path, connector } = setup();
    const c = connector();
    const changes = [consent('ann@example.com', 'newsletter', 'denied'), change({ recordId: 'zed@example.com', op: 'suppress' }), change({ recordId: 'carol@example.com', op: 'erase' })];
    await c.push(changes);
    const once = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    const again = await c.push(changes);
    expect(again.every((r) => r.status === 'ok')).toBe(true);
    expect(readFileSync(path).equals(once)).toBe(true);
    expect(statSync(path).mtimeMs).toBe(mtime);
  });

  it('erase removes every row of the subject, whatever its case', async () => {
    const { path, connector } = setup();
    const results = await connector().push([change({ recordId: 'bob@example.com', op: 'erase' }), consent('bob@example.com', '*', 'denied')]);
    expect(results).toEqual([expect.objectContaining({ status: 'ok' }), expect.objectContaining({ status: 'ok' })]);
    expect(results[0]).not.toHaveProperty('snapshot');
    const text = readFileSync(path, 'utf8');
    expect(text.toLowerCase()).not.toContain('bob@example.com');
    expect(text).toBe(HEADER + ROWS[0] + ROWS.slice(3).join(''));
  });

  it('suppress adds a marker row (next to the subject\'s rows) that reads back as suppressed, not as a denial', async () => {
    const { path, connector } = setup();
    const c = connector();
    const [r] = await c.push([change({ recordId: 'ann@example.com', op: 'suppress' }), change({ recordId: 'dave@example.com', op: 'suppress' })]);
    expect(r).toMatchObject({ status: 'ok', snapshot: { suppressed: { email: true }, consent: { 'email:newsletter': 'granted' } } });
    const text = readFileSync(path, 'utf8');
    expect(text).toBe(HEADER + (ROWS[0] as string) + 'ann@example.com,email,*,unsubscribed,2025-06-01T12:00:00.000Z,consentd:suppressed,\n' + ROWS.slice(1).join(''));
    const [page] = await pullAll(c);
    expect(page?.records.find((s) => s.subject === 'ann@example.com')).toMatchObject({ suppressed: { email: true }, consent: { 'email:newsletter': 'granted' } });
    expect(page?.observations.filter((o) => o.subject === 'ann@example.com')).toHaveLength(1);
  });

  it('keeps a subject\'s rows adjacent, so a pull in small pages reads back the whole record', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `p${i}@example.com,email,*,subscribed,2024-01-01,form,\n`);
    const { path, connector } = setup(HEADER + many.join(''));
    const c = csv({ path: 'list.csv', purposes: { weekly: 'newsletter' }, pageSize: 5 }, { baseDir: dirname(path), now: () => NOW });
    await c.push([consent('p3@example.com', 'newsletter', 'denied'), change({ recordId: 'p3@example.com', op: 'suppress' }), consent('new@example.com', '*', 'denied')]);
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines.slice(4, 7).map((l) => l.split(',').slice(0, 4).join(','))).toEqual([
      'p3@example.com,email,*,subscribed',
      'p3@example.com,email,weekly,unsubscribed',
      'p3@example.com,email,*,unsubscribed',
    ]);
    expect(lines.at(-2)).toMatch(/^new@example\.com,email,\*,unsubscribed,/);
    const records = (await pullAll(c)).flatMap((p) => p.records).filter((r) => r.subject === 'p3@example.com');
    expect(records).toEqual([expect.objectContaining({ consent: { 'email:*': 'granted', 'email:newsletter': 'denied' }, suppressed: { email: true } })]);
    void connector;
  });

  it('round trip: pull, apply changes, pull shows the new states', async () => {
    const { connector } = setup();
    const c = connector();
    const before = (await pullAll(c))[0];
    expect(before?.records.find((s) => s.subject === 'bob@example.com')?.consent).toEqual({ 'email:*': 'granted', 'email:newsletter': 'granted' });
    await c.push([consent('bob@example.com', '*', 'denied'), consent('carol@example.com', '*', 'granted'), consent('new@example.com', '*', 'denied')]);
    const after = (await pullAll(c))[0];
    const state = (s: string) => after?.records.find((r) => r.subject === s)?.consent;
    expect(state('bob@example.com')).toEqual({ 'email:*': 'denied', 'email:newsletter': 'granted' });
    expect(state('carol@example.com')).toEqual({ 'email:*': 'granted' });
    expect(state('new@example.com')).toEqual({ 'email:*': 'denied' });
    const carol = after?.observations.find((o) => o.subject === 'carol@example.com');
    expect(carol).toMatchObject({ state: 'granted', strength: 'explicit', statedAt: NOW.toISOString(), evidence: 'consentd:R1-denial-sticky:obs9' });
    expect(after?.rejects).toEqual([expect.objectContaining({ where: expect.stringMatching(/list\.csv:6$/) })]);
  });

  it('is atomic: a crash between write and rename leaves the original intact and no temp file', async () => {
    const { dir, path, connector } = setup();
    const original = readFileSync(path);
    const c = connector({
      fs: {
        rename: () => Promise.reject(Object.assign(new Error('simulated crash'), { code: 'EIO' })),
      },
    });
    const results = await c.push([consent('ann@example.com', 'newsletter', 'denied')]);
    expect(results).toEqual([expect.objectContaining({ status: 'retry', reason: 'simulated crash' })]);
    expect(readFileSync(path).equals(original)).toBe(true);
    expect(readdirSync(dir)).toEqual(['list.csv']);
    const failing = connector({ fs: { rename: () => Promise.reject(Object.assign(new Error('read-only'), { code: 'EROFS' })) } });
    expect(await failing.push([consent('ann@example.com', 'newsletter', 'denied')])).toEqual([expect.objectContaining({ status: 'failed', code: 'EROFS' })]);
  });

  it('answers retry when the file changed during the rewrite, leaving it alone', async () => {
    const { dir, path, connector } = setup();
    const { stat } = await import('node:fs/promises');
    let calls = 0;
    const c = connector({
      fs: {
        // The second stat (just before the rename) sees someone else's edit.
        stat: async (p) => {
          const s = await stat(p);
          return ++calls === 2 ? { mtimeMs: s.mtimeMs + 1, ctimeMs: s.ctimeMs, size: s.size, ino: s.ino, mode: s.mode } : s;
        },
      },
    });
    const original = readFileSync(path);
    const [r] = await c.push([consent('ann@example.com', 'newsletter', 'denied')]);
    expect(r).toMatchObject({ status: 'retry', reason: expect.stringContaining('changed while it was being rewritten') });
    expect(readFileSync(path).equals(original)).toBe(true);
    expect(readdirSync(dir)).toEqual(['list.csv']);
  });

  it('fails changes it cannot express, and a missing file', async () => {
    const { dir, connector } = setup('email,state\na@x.com,yes\n');
    const c = connector();
    const results = await c.push([
      consent('a@x.com', 'newsletter', 'denied'),
      change({ recordId: 'a@x.com', op: 'set_consent', channel: 'sms', purpose: '*', target: 'denied' }),
      consent('a@x.com', 'events', 'denied'),
      consent('a@x.com', '*', 'denied'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['failed', 'failed', 'failed', 'ok']);
    expect(results[0]).toMatchObject({ reason: expect.stringContaining('no purpose column') });
    expect(results[1]).toMatchObject({ reason: expect.stringContaining('channel "sms" is not configured') });
    expect(results[2]).toMatchObject({ reason: expect.stringContaining('"events" is not mapped') });
    expect(readFileSync(join(dir, 'list.csv'), 'utf8')).toBe('email,state\na@x.com,unsubscribed\n');
    const missing = csv({ path: 'nope.csv' }, { baseDir: dir });
    expect(await missing.push([consent('a@x.com', '*', 'denied')])).toEqual([expect.objectContaining({ status: 'failed', code: 'CSV_FILE_MISSING' })]);
  });

  it('a file without an evidence column records a suppression as "suppressed"', async () => {
    const { path, connector } = setup('email,state\r\na@x.com,yes');
    const c = connector();
    await c.push([change({ recordId: 'b@x.com', op: 'suppress' })]);
    expect(readFileSync(path, 'utf8')).toBe('email,state\r\na@x.com,yes\r\nb@x.com,suppressed\r\n');
    const [page] = await pullAll(c);
    expect(page?.records.find((r) => r.subject === 'b@x.com')).toMatchObject({ suppressed: { email: true } });
    await c.push([change({ recordId: 'b@x.com', op: 'suppress' })]);
    expect(readFileSync(path, 'utf8')).toBe('email,state\r\na@x.com,yes\r\nb@x.com,suppressed\r\n');
  });

  it('serializes concurrent pushes and keeps the fixture untouched', async () => {
    const { path, connector } = setup();
    const c = connector();
    const pushes = await Promise.all([
      c.push([consent('ann@example.com', 'newsletter', 'denied')]),
      c.push([consent('carol@example.com', '*', 'granted')]),
      c.push([change({ recordId: 'x@example.com', op: 'suppress' })]),
    ]);
    expect(pushes.flat().every((r) => r.status === 'ok')).toBe(true);
    const text = readFileSync(path, 'utf8');
    expect(text).toContain('ann@example.com,email,weekly,unsubscribed');
    expect(text).toContain('carol@example.com,email,,subscribed');
    expect(text).toContain('x@example.com,email,*,unsubscribed,2025-06-01T12:00:00.000Z,consentd:suppressed');
    // copyFrom seeds are never modified
    const dir = tempDir();
    const seeded = csv({ path: join(dir, 'copy.csv'), copyFrom: 'synonyms.csv', purposes: { weekly: 'newsletter', offers: 'offers' } });
    const fixture = readFileSync(join(FIXTURES, 'synonyms.csv'));
    await seeded.push([change({ recordId: 'ann@example.com', op: 'erase' })]);
    expect(readFileSync(join(FIXTURES, 'synonyms.csv')).equals(fixture)).toBe(true);
    expect(readFileSync(join(dir, 'copy.csv'), 'utf8')).not.toContain('ann@example.com');
  });
});

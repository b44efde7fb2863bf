import { createWriteStream, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FIXTURES, csv, pullAll, tempDir } from '../fixtures/csv/helpers.js';

describe('csv pull', () => {
  it('reads header and state synonyms into observations and snapshots', async () => {
    const c = csv({ path: 'synonyms.csv', purposes: { Weekly: 'newsletter', offers: 'offers' } });
    const pages = await pullAll(c);
    expect(pages).toHaveLength(1);
    const [page] = pages;
    expect(page?.rejects).toEqual([]);
    expect(page?.cursor).toMatch(/^mtime=.*;size=\d+$/);
    const obs = page?.observations ?? [];
    // One observation per data row, in file order (lines 2..11); references name the file only.
    expect(new Set(obs.map((o) => o.reference))).toEqual(new Set(['synonyms.csv']));
    const byLine = (n: number) => (n >= 2 && n <= 11 ? obs[n - 2] : undefined);
    expect(byLine(2)).toMatchObject({ subject: 'ann@example.com', recordId: 'ann@example.com', source: 'list', how: 'import', kind: 'consent', channel: 'email', purpose: 'newsletter', state: 'granted', strength: 'explicit', statedAt: '2024-01-10T00:00:00.000Z', evidence: 'signup form #12' });
    expect(byLine(3)).toMatchObject({ purpose: 'offers', state: 'denied', strength: 'explicit', statedAt: '2024-02-01T08:30:00.000Z' });
    expect(byLine(4)).toMatchObject({ subject: 'bob@example.com', purpose: '*', state: 'granted', strength: 'implicit' });
    expect(byLine(5)).toMatchObject({ subject: 'carol@example.com', purpose: '*', state: 'granted', strength: 'implicit', statedAt: null });
    expect(byLine(6)).toMatchObject({ state: 'denied', strength: 'explicit' });
    expect(byLine(7)).toMatchObject({ kind: 'suppression', reason: 'hard_bounce' });
    expect(byLine(8)).toMatchObject({ kind: 'suppression', reason: 'complaint', state: 'denied' });
    expect(byLine(9)).toMatchObject({ purpose: 'newsletter', state: 'unknown', strength: 'implicit' });
    expect(byLine(10)).toMatchObject({ kind: 'erasure', subject: 'heidi@example.com' });
    expect(byLine(11)).toMatchObject({ kind: 'suppression', reason: 'invalid_address' });
    expect(byLine(12)).toBeUndefined(); // consentd's own suppression marker: no observation
    expect(obs).toHaveLength(10);

    const snap = (s: string) => page?.records.find((r) => r.subject === s);
    expect(page?.records).toHaveLength(10);
    expect(snap('ann@example.com')).toEqual({ connectorId: 'list', recordId: 'ann@example.com', subject: 'ann@example.com', consent: { 'email:newsletter': 'granted', 'email:offers': 'denied' }, suppressed: {}, meta: {} });
    expect(snap('erin@example.com')).toMatchObject({ consent: {}, suppressed: { email: true } });
    expect(snap('frank@example.com')).toMatchObject({ consent: {}, suppressed: { email: true } });
    expect(snap('judy@example.com')).toMatchObject({ consent: {}, suppressed: { email: true } });
    expect(snap('heidi@example.com')).toMatchObject({ consent: {}, suppressed: {} });
  });

  it('reports malformed rows with file:line and processes the rest', async () => {
    const c = csv({ path: 'malformed.csv', purposes: { weekly: 'newsletter' } });
    const [page] = await pullAll(c);
    const file = join(FIXTURES, 'malformed.csv');
    expect(page?.rejects).toEqual([
      { where: `${file}:3`, reason: expect.stringContaining('invalid email "not-an-email"') },
      { where: `${file}:4`, reason: 'unknown state "maybe"' },
      { where: `${file}:5`, reason: 'unknown channel "fax"' },
      { where: `${file}:6`, reason: expect.stringContaining('unparseable stated_at "2024-13-01"') },
      { where: `${file}:7`, reason: expect.stringContaining('purpose "Monthly" is not mapped') },
      { where: `${file}:8`, reason: expect.stringContaining('channel "sms" is not configured') },
      { where: `${file}:12`, reason: expect.stringContaining('unparseable stated_at "yesterday"') },
    ]);
    expect(page?.observations.map((o) => [o.subject, o.reference, o.evidence])).toEqual([
      ['ok1@example.com', 'malformed.csv', 'form'],
      ['ok7@example.com', 'malformed.csv', 'line one\r\nline two'],
    ]);
  });

  it('streams a large file in pages, keeping a subject together and the cursor on the last page', async () => {
    const dir = tempDir();
    const path = join(dir, 'big.csv');
    const out = createWriteStream(path);
    out.write('email,purpose,state,stated_at,evidence\n');
    // 20,000 rows: 10,000 subjects with two adjacent rows each (a grant and a later denial).
    for (let i = 0; i < 10_000; i++) {
      out.write(`user${i}@example.com,newsletter,subscribed,2024-01-01,form\n`);
      out.write(`USER${i}@example.com,*,unsubscribed,2024-02-01,\n`);
    }
    out.end();
    await once(out, 'finish');
    const c = csv({ path, purposes: { newsletter: 'newsletter' }, pageSize: 5_001 }, { baseDir: dir });
    const pages = await pullAll(c);
    expect(pages.length).toBe(4);
    expect(pages.slice(0, -1).every((p) => p.cursor === null)).toBe(true);
    expect(pages.at(-1)?.cursor).toMatch(/^mtime=/);
    expect(pages.reduce((n, p) => n + p.observations.length, 0)).toBe(20_000);
    const seen = new Set<string>();
    for (const p of pages) {
      expect(p.observations.length).toBeLessThanOrEqual(5_002);
      for (const r of p.records) {
        expect(seen.has(r.subject)).toBe(false); // never split across pages
        seen.add(r.subject);
        expect(r.consent).toEqual({ 'email:newsletter': 'granted', 'email:*': 'denied' });
      }
    }
    expect(seen.size).toBe(10_000);
  });

  it('keeps the most restrictive state of a subject within a page', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'dup.csv'), 'email,state\na@x.com,subscribed\nb@x.com,pending\nA@X.com,unsubscribed\na@x.com,yes\nb@x.com,yes\n');
    const [page] = await pullAll(csv({ path: 'dup.csv' }, { baseDir: dir }));
    expect(page?.records.map((r) => [r.subject, r.consent])).toEqual([
      ['a@x.com', { 'email:*': 'denied' }],
      ['b@x.com', { 'email:*': 'granted' }],
    ]);
  });

  it('handles BOM, semicolons, CRLF and a last line without newline; empty files and bad headers fail', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'semi.csv'), '\uFEFFEmail;Status\r\na@x.com;yes\r\n\r\nb@x.com;no');
    const [page] = await pullAll(csv({ path: 'semi.csv', delimiter: ';' }, { baseDir: dir }));
    expect(page?.observations.map((o) => [o.subject, o.reference])).toEqual([
      ['a@x.com', 'semi.csv'],
      ['b@x.com', 'semi.csv'],
    ]);
    writeFileSync(join(dir, 'sloppy.csv'), 'email,state,note\na@x.com,yes,he said "hi"\nb@x.com,no\n');
    const [sloppy] = await pullAll(csv({ path: 'sloppy.csv' }, { baseDir: dir }));
    expect(sloppy?.observations.map((o) => o.subject)).toEqual(['a@x.com', 'b@x.com']);
    writeFileSync(join(dir, 'open.csv'), 'email,state\na@x.com,"yes\nb@x.com,no\n');
    await expect(pullAll(csv({ path: 'open.csv' }, { baseDir: dir }))).rejects.toMatchObject({ code: 'CSV_SYNTAX', message: expect.stringContaining('open.csv') });
    writeFileSync(join(dir, 'empty.csv'), '');
    await expect(pullAll(csv({ path: 'empty.csv' }, { baseDir: dir }))).rejects.toThrow(/empty/);
    writeFileSync(join(dir, 'bad.csv'), 'name,phone\nx,y\n');
    await expect(pullAll(csv({ path: 'bad.csv' }, { baseDir: dir }))).rejects.toMatchObject({ code: 'CSV_BAD_HEADER' });
    await expect(pullAll(csv({ path: 'missing.csv' }, { baseDir: dir }))).rejects.toMatchObject({ code: 'CSV_FILE_MISSING' });
    const onlyHeader = join(dir, 'header.csv');
    writeFileSync(onlyHeader, 'email,state\n');
    expect(await pullAll(csv({ path: 'header.csv' }, { baseDir: dir }))).toEqual([{ records: [], observations: [], rejects: [], cursor: expect.stringMatching(/^mtime=/) }]);
  });

  it('seeds the file from copyFrom once, never overwriting', async () => {
    const dir = tempDir();
    const c = csv({ path: join(dir, 'sub/copy.csv'), copyFrom: 'synonyms.csv', purposes: { weekly: 'newsletter', offers: 'offers' } });
    expect(existsSync(join(dir, 'sub/copy.csv'))).toBe(false);
    const [page] = await pullAll(c);
    expect(page?.observations).toHaveLength(10);
    expect(readFileSync(join(dir, 'sub/copy.csv'), 'utf8')).toBe(readFileSync(join(FIXTURES, 'synonyms.csv'), 'utf8'));
    writeFileSync(join(dir, 'sub/copy.csv'), 'email,state\nz@x.com,yes\n');
    const [again] = await pullAll(c);
    expect(again?.observations.map((o) => o.subject)).toEqual(['z@x.com']);
  });

  it('declares its capabilities and checks the file', async () => {
    const c = csv({ path: 'synonyms.csv', purposes: { Weekly: 'newsletter', offers: 'offers' } });
    expect(c.capabilities).toEqual({
      consent: [
        { channel: 'email', purpose: '*' },
        { channel: 'email', purpose: 'newsletter' },
        { channel: 'email', purpose: 'offers' },
      ],
      suppression: ['email'],
      pushGrants: true,
      erase: true,
      acceptsUnknownAddresses: true,
    });
    expect(c.limits.batchSize).toBe(50_000);
    const ok = await c.check();
    expect(ok.ok).toBe(true);
    expect(ok.details.join('\n')).toMatch(/header recognized: email="E-mail", purpose="Topic", state="Status", stated_at="Updated At", evidence="Source"/);
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.csv'), 'name,phone\n');
    const bad = await csv({ path: 'bad.csv' }, { baseDir: dir }).check();
    expect(bad.ok).toBe(false);
    expect(bad.details.join('\n')).toMatch(/header not recognized/);
    const missing = await csv({ path: 'nope.csv' }, { baseDir: dir }).check();
    expect(missing).toMatchObject({ ok: false, details: [expect.stringContaining('not readable')] });
  });
});

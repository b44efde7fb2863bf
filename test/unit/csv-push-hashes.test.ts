import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvRowContext } from '../../connectors/csv/pull-entry.js';
import { cellHash } from '../../connectors/csv/scan.js';
import { rewriteCsv, type FileHashes, type RewriteOptions } from '../../connectors/csv/write.js';
import type { Change } from '../../src/model/types.js';
import { change, csv, tempDir } from '../fixtures/csv/helpers.js';

/*
 * A CSV connector keeps the address hashes of its file's records as its last rewrite left them, so
 * that the next rewrite of that same file copies the rows it does not change without hashing their
 * addresses again (most of a large file's rewrite). What it writes must not depend on them.
 */

const NOW = new Date('2025-06-01T12:00:00.000Z');
const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';

/** A deterministic generator (tests must not depend on Math.random). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const person = (i: number): string => (i === 7 ? 'zoë@example.com' : `p${i}@example.com`);

/** A plain list: several rows for some people, case variants, a non-ASCII address, blank lines, no final line ending. */
function listFile(people: number): string {
  const rows: string[] = [];
  for (let i = 0; i < people; i++) {
    rows.push(`${person(i)},email,*,subscribed,2024-01-01,form\n`);
    if (i % 3 === 0) rows.push(`${person(i).toUpperCase()},email,weekly,subscribed,2024-01-02,form\n`);
    if (i % 11 === 0) rows.push('\n');
  }
  return (HEADER + rows.join('')).replace(/\n$/, '');
}

function randomChanges(rand: () => number, people: number, n: number): Change[] {
  const out: Change[] = [];
  for (let k = 0; k < n; k++) {
    const recordId = person(Math.floor(rand() * (people + 20))); // a few people the file does not hold yet
    const r = rand();
    if (r < 0.45) out.push(change({ recordId, op: 'set_consent', purpose: rand() < 0.5 ? '*' : 'newsletter', target: rand() < 0.7 ? 'denied' : 'granted', rule: 'R1-denial-sticky', decidedBy: `obs${k}` }));
    else if (r < 0.8) out.push(change({ recordId, op: 'suppress' }));
    else if (r < 0.85) out.push(change({ recordId, op: 'erase' }));
  }
  return out;
}

const settings = { path: 'list.csv', purposes: { weekly: 'newsletter' } };

/** The index of the first record (blank lines are not records) starting with `prefix`. */
function recordIndex(path: string, prefix: string): number {
  const records = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  const i = records.findIndex((l) => l.startsWith(prefix));
  if (i < 1) throw new Error(`no record ${prefix}`);
  return i;
}

function rewriteOptions(path: string, hashes: { current: FileHashes | null }): RewriteOptions {
  return { path, delimiter: ',', connectorId: 'list', ctx: csvRowContext({ purposes: settings.purposes, channels: ['email'] }), now: () => NOW, hashes };
}

describe('csv push: record hashes kept between rewrites', () => {
  it('a connector rewriting its file again and again writes exactly what fresh rewrites write', async () => {
    const people = 900;
    const kept = tempDir();
    const fresh = tempDir();
    for (const dir of [kept, fresh]) writeFileSync(join(dir, 'list.csv'), listFile(people));
    const longLived = csv(settings, { baseDir: kept, now: () => NOW });
    const rand = prng(7);
    for (let round = 0; round < 8; round++) {
      const changes = randomChanges(rand, people, 120);
      const a = await longLived.push(changes);
      // A new connector each time: nothing kept, every address hashed from the bytes.
      const b = await csv(settings, { baseDir: fresh, now: () => NOW }).push(changes);
      expect(a).toEqual(b);
      expect(readFileSync(join(kept, 'list.csv')).equals(readFileSync(join(fresh, 'list.csv')))).toBe(true);
    }
    // The rounds did change the file (denials, markers, erasures, new people).
    expect(readFileSync(join(kept, 'list.csv'), 'utf8')).not.toBe(listFile(people));
    expect(readFileSync(join(kept, 'list.csv'), 'utf8')).toContain('consentd:suppressed');
  });

  it('keeps one hash per record for the version it wrote, and reads them for that version only', async () => {
    const dir = tempDir();
    const path = join(dir, 'list.csv');
    writeFileSync(path, listFile(50));
    const hashes: { current: FileHashes | null } = { current: null };
    await rewriteCsv(rewriteOptions(path, hashes), [change({ recordId: person(3), op: 'suppress' })]);
    const first = hashes.current;
    expect(first).not.toBeNull();
    // Header, 50 people, the 17 upper-case rows, the marker row added for p3.
    expect(first?.hashes.length).toBe(1 + 50 + 17 + 1);
    expect(first?.hashes.view()[1]).toBe(cellHash(person(0)));
    // Trusted for that version: a row whose kept hash says "not wanted" is copied unread. (Shown by
    // making the kept hash of p5's row lie; a real file cannot change without a new version.)
    (first?.hashes as unknown as { data: Int32Array }).data[recordIndex(path, 'p5@')] = cellHash('nobody@example.com');
    await rewriteCsv(rewriteOptions(path, hashes), [change({ recordId: person(5), op: 'set_consent', target: 'denied' })]);
    expect(readFileSync(path, 'utf8')).toContain('\np5@example.com,email,*,subscribed,2024-01-01,form\n');
    // Another writer's edit is a new version: hashed again from the bytes, and the change lands.
    appendFileSync(path, '\nlate@example.com,email,*,subscribed,2024-01-01,form');
    await rewriteCsv(rewriteOptions(path, hashes), [change({ recordId: 'late@example.com', op: 'set_consent', target: 'denied' }), change({ recordId: person(5), op: 'set_consent', target: 'denied' })]);
    const after = readFileSync(path, 'utf8');
    expect(after).toContain('late@example.com,email,*,unsubscribed,2025-06-01T12:00:00.000Z');
    expect(after).toContain('p5@example.com,email,*,unsubscribed,2025-06-01T12:00:00.000Z');
  });

  it('kept hashes out of step with the rows, or a row count that differs, are found out: the rewrite starts over and is right', async () => {
    for (const damage of ['shifted', 'count'] as const) {
      const dir = tempDir();
      const path = join(dir, 'list.csv');
      writeFileSync(path, listFile(40));
      const hashes: { current: FileHashes | null } = { current: null };
      await rewriteCsv(rewriteOptions(path, hashes), [change({ recordId: person(2), op: 'suppress' })]);
      const reference = tempDir();
      writeFileSync(join(reference, 'list.csv'), readFileSync(path));
      // From p10's row on each kept hash is its next row's (as if a row had gone unseen): p20's
      // hash sits on the row before it; or the count of rows differs.
      const kept = hashes.current?.hashes as unknown as { data: Int32Array; length: number };
      if (damage === 'shifted') kept.data.copyWithin(recordIndex(path, 'p10@'), recordIndex(path, 'p10@') + 1, kept.length);
      else kept.length -= 1;
      const changes = [change({ recordId: person(20), op: 'set_consent', target: 'denied' }), change({ recordId: person(30), op: 'erase' })];
      const stale: string[] = [];
      const got = await rewriteCsv({ ...rewriteOptions(path, hashes), onStaleHashes: (reason) => stale.push(reason) }, changes);
      expect(stale).toEqual([damage === 'count' ? 'record count' : expect.stringMatching(/^record \d+$/)]);
      const want = await rewriteCsv(rewriteOptions(join(reference, 'list.csv'), { current: null }), changes);
      expect(got).toEqual(want);
      expect(readFileSync(path).equals(readFileSync(join(reference, 'list.csv')))).toBe(true);
      expect(got.every((r) => r.status === 'ok')).toBe(true);
      // Kept anew for the file now on disk.
      expect(hashes.current?.hashes.length).toBe(readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').length);
    }
  });
});

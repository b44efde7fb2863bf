import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { changeKey, subjectHash, toObservation } from '../../src/model/index.js';
import type { Change, Decision, Observation, ObservationInput, RecordSnapshot } from '../../src/model/index.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { SqliteStore, SqliteStoreOptions } from '../../src/store/sqlite/index.js';

export const SALT = 'test-salt';

/** A store on a real file (WAL is real) in a fresh temp dir; `cleanup` closes and deletes. */
export function tempStore(opts: SqliteStoreOptions = {}): { store: SqliteStore; path: string; reopen: (o?: SqliteStoreOptions) => SqliteStore; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'consentd-store-'));
  const path = join(dir, 'consentd.db');
  const opened: SqliteStore[] = [];
  const reopen = (o: SqliteStoreOptions = {}): SqliteStore => {
    const s = openSqliteStore(path, { salt: SALT, ...opts, ...o });
    opened.push(s);
    return s;
  };
  const store = reopen();
  return {
    store,
    path,
    reopen,
    cleanup: async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function obs(subject: string, over: Partial<ObservationInput> = {}, observedAt = '2025-01-01T00:00:00.000Z'): Observation {
  return toObservation(
    {
      subject,
      source: 'crm',
      recordId: `r-${subject}`,
      kind: 'consent',
      channel: 'email',
      purpose: '*',
      state: 'denied',
      strength: 'explicit',
      statedAt: '2024-06-01T10:00:00.000Z',
      how: 'pull',
      reference: null,
      evidence: null,
      reason: null,
      ...over,
    },
    observedAt,
  );
}

export function rec(subject: string, over: Partial<RecordSnapshot> = {}): RecordSnapshot {
  return { connectorId: 'crm', recordId: `r-${subject}`, subject, consent: { 'email:*': 'granted' }, suppressed: { email: false }, meta: { type: 'Contact' }, ...over };
}

export function change(subject: string, over: Partial<Omit<Change, 'key'>> = {}): Change {
  const c: Omit<Change, 'key'> = {
    connectorId: 'crm',
    recordId: `r-${subject}`,
    subject,
    op: 'set_consent',
    channel: 'email',
    purpose: '*',
    target: 'denied',
    rule: 'R1-denial-sticky',
    decidedBy: 'obs-1',
    meta: {},
    ...over,
  };
  return { ...c, key: changeKey(c) };
}

export function decision(subject: string, state: 'granted' | 'denied' = 'denied'): Decision {
  return {
    subject,
    permissions: [{ channel: 'email', purpose: '*', state, rule: 'R1-denial-sticky', decidedBy: 'obs-1', statedAt: null, stale: false }],
    suppressions: [],
    erasureRequested: false,
  };
}

export const hashOf = (subject: string): string => subjectHash(subject, SALT);

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

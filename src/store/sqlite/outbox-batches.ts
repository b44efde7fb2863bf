import type Database from 'better-sqlite3';
import type { Change } from '../../model/index.js';
import type { OutboxItem } from '../store.js';
import { outboxBody } from './outbox-rows.js';

/*
 * Outbox batches (migration 6): how a bulk reconcile queues its changes. One row holds up to
 * BATCH_ROW changes of one connector as a JSON array, is claimed (split when a claim takes only part
 * of it), settled member by member, and emptied when done (`changes` NULL: no personal data stays).
 * At 1M people (693k changes) one outbox row per change cost about 11 s of the apply (each row's
 * state moved twice through two indexes) and 5-6 s of the reconcile's inserts.
 *
 * Order. A member must never be pushed after a newer change for the same target (connector, record,
 * op, channel, purpose). Two invariants make "newer" cheap to tell:
 * - I1: a batch for a connector is written only while the connector has no outbox row other than
 *   erasures (`accepts`). Every other outbox row of the connector is therefore newer than every
 *   member of its batches (erasures never share a target with a member: members are never erasures).
 * - I2: the pending or in-flight batches of a connector cover disjoint subject ranges (`accepts`
 *   again), so no two of them hold the same target (a reconcile pass decides each subject once).
 * So at claim a member whose target has any outbox row is superseded, and a failed member whose
 * target got one meanwhile is dropped rather than retried (the newer row lands it).
 *
 * One difference from per-change rows: a change for a target that is in flight inside a batch is
 * queued, not skipped as an echo of that push (the per-change outbox looks its in-flight rows up by
 * target; a batch's members have no index). It is then pushed again after the batch, idempotently.
 *
 * A member's id (OutboxItem.id) is negative: -(row * MEMBER_SPAN + index in the row).
 */

/** Most changes one batch row holds. */
export const BATCH_ROW = 2000;
const MEMBER_SPAN = 65_536;

/** A member in the row's JSON: the change's fields (record id 0 when it is the subject); null once erased. */
type Member = [string, string | 0, string, Change['op'], Change['channel'], string, Change['target'], Change['rule'], Change['decidedBy'], Change['meta']] | null;

export const isBatchMember = (id: number): boolean => id < 0;
const memberId = (row: number, index: number): number => -(row * MEMBER_SPAN + index);
const rowOf = (id: number): number => Math.floor(-id / MEMBER_SPAN);
const indexOf = (id: number): number => -id % MEMBER_SPAN;

function encodeMember(c: Change): Member {
  return [c.key, c.recordId === c.subject ? 0 : c.recordId, c.subject, c.op, c.channel, c.purpose, c.target, c.rule, c.decidedBy, c.meta];
}

function decodeMember(m: NonNullable<Member>, connectorId: string): Change {
  const [key, recordId, subject, op, channel, purpose, target, rule, decidedBy, meta] = m;
  return { key, connectorId, recordId: recordId === 0 ? subject : recordId, subject, op, channel, purpose, target, rule, decidedBy, meta };
}

interface PendingRow {
  id: number;
  attempts: number;
  changes: string;
  enqueued_at: string;
}

/** The batches' statements and rules; the SQLite store calls it inside its own transactions. */
export class OutboxBatches {
  private readonly s: ReturnType<typeof prepare>;
  /** Members of rows claimed or read recently (a failed push settles a row's members one by one). */
  private readonly parsed = new Map<number, { connectorId: string; members: Member[] }>();

  constructor(db: Database.Database) {
    this.s = prepare(db);
  }

  /** May `changes` (one connector's, none an erasure) be queued as batches? (I1, I2) */
  accepts(connectorId: string, minSubject: string, maxSubject: string): boolean {
    return this.s.otherThanErasures.get(connectorId) === undefined && this.s.overlapping.get(connectorId, maxSubject, minSubject) === undefined;
  }

  /** Queue one connector's changes (in plan order) as batch rows; returns how many were queued. */
  enqueue(connectorId: string, changes: readonly Change[], now: string): number {
    const seen = new Set<string>();
    let members: Member[] = [];
    let min = '';
    let max = '';
    let queued = 0;
    const flush = (): void => {
      if (members.length === 0) return;
      this.s.insert.run(connectorId, members.length, min, max, JSON.stringify(members), now, now);
      queued += members.length;
      members = [];
    };
    for (const c of changes) {
      // Idempotent by key, as the per-change outbox is.
      const k = `${c.subject}\u0000${c.key}`;
      if (seen.has(k)) continue;
      seen.add(k);
      if (members.length === 0 || c.subject < min) min = c.subject;
      if (members.length === 0 || c.subject > max) max = c.subject;
      members.push(encodeMember(c));
      if (members.length >= BATCH_ROW) flush();
    }
    flush();
    return queued;
  }

  /**
   * Claim up to `limit` members of the connector's pending batches, oldest first; a row is split
   * when only part of it fits. Members superseded by a newer outbox row (I1) or whose subject was
   * erased are settled at once and not returned.
   */
  claim(connectorId: string, limit: number, now: string, isTombstoned: (subject: string) => boolean): OutboxItem[] {
    const items: OutboxItem[] = [];
    // Only a connector with outbox rows other than erasures can have superseded members.
    const probe = this.s.otherThanErasures.get(connectorId) !== undefined;
    let room = limit;
    while (room > 0) {
      const row = this.s.oldestPending.get(connectorId) as PendingRow | undefined;
      if (row === undefined) break;
      const all = JSON.parse(row.changes) as Member[];
      let taken = all;
      let id = row.id;
      const attempts = row.attempts + 1;
      if (all.length > room) {
        taken = all.slice(0, room);
        const rest = all.slice(room);
        this.s.keepRest.run(rest.length, bound(rest, 'min'), bound(rest, 'max'), JSON.stringify(rest), now, row.id);
        id = Number(this.s.insertTaken.run(connectorId, taken.length, attempts, bound(taken, 'min'), bound(taken, 'max'), JSON.stringify(taken), row.enqueued_at, now).lastInsertRowid);
      }
      let dropped = 0;
      const before = items.length;
      taken.forEach((m, index) => {
        if (m === null) return void dropped++;
        const change = decodeMember(m, connectorId);
        if (isTombstoned(change.subject) || (probe && this.hasNewer(change))) return void dropped++;
        items.push({ id: memberId(id, index), change, lane: 'normal', state: 'in_flight', attempts, notBefore: 0, lastError: null, enqueuedAt: row.enqueued_at });
      });
      if (id === row.id) this.s.takeWhole.run(dropped, now, id);
      else if (dropped > 0) this.s.settle.run(dropped, 0, now, id);
      this.s.finishIfSettled.run(now, id);
      if (items.length > before) this.remember(id, { connectorId, members: taken });
      // Dropped members take no room: a claim comes back empty only when nothing is left to push.
      room = limit - items.length;
    }
    return items;
  }

  /** Pushed: the members are done (their rows finish once every member is settled). */
  complete(ids: readonly number[], now: string): void {
    const perRow = new Map<number, number>();
    for (const id of ids) perRow.set(rowOf(id), (perRow.get(rowOf(id)) ?? 0) + 1);
    for (const [row, n] of perRow) {
      this.s.settle.run(n, n, now, row);
      this.finish(row, now);
    }
  }

  /**
   * A member failed: it leaves its batch as a per-change outbox row in `state` (retry or dead),
   * unless its target has a newer row, which lands it (then null). Returns the change and its row.
   */
  split(id: number, state: 'retry' | 'dead', notBefore: number, error: string, now: string): { change: Change; seq: number; attempts: number } | null {
    const row = rowOf(id);
    const members = this.membersOf(row);
    const m = members?.members[indexOf(id)];
    let out: { change: Change; seq: number; attempts: number } | null = null;
    if (members !== undefined && m !== undefined && m !== null) {
      const change = decodeMember(m, members.connectorId);
      const attempts = (this.s.attemptsOf.get(row) as number | undefined) ?? 1;
      if (!this.hasNewer(change)) {
        const c = change;
        const seq = Number(
          this.s.insertSplit.run(c.key, c.connectorId, c.recordId, c.subject, c.op, c.channel, c.purpose, state, attempts, notBefore, error, outboxBody(c), now, now).lastInsertRowid,
        );
        out = { change, seq, attempts };
      }
    }
    this.s.settle.run(1, 0, now, row);
    this.finish(row, now);
    return out;
  }

  /** Crash recovery: in-flight batches are pending again (pushes are idempotent). */
  requeue(connectorId: string | undefined, now: string): number {
    this.parsed.clear();
    const rows = (connectorId === undefined ? this.s.requeueAll.all(now) : this.s.requeueOf.all(now, connectorId)) as number[];
    return rows.reduce((a, b) => a + b, 0);
  }

  /** An erased subject leaves every pending or in-flight batch (its members become null). */
  scrub(subject: string, now: string): void {
    for (const r of this.s.covering.all(subject, subject) as Array<{ id: number; state: string; changes: string }>) {
      const members = JSON.parse(r.changes) as Member[];
      let n = 0;
      for (let i = 0; i < members.length; i++) {
        const m = members[i];
        if (m !== null && m !== undefined && m[2] === subject) {
          members[i] = null;
          n++;
        }
      }
      if (n === 0) continue;
      // An in-flight member is still settled by its push; a pending one is settled now.
      this.s.rewrite.run(JSON.stringify(members), r.state === 'pending' ? n : 0, now, r.id);
      this.parsed.delete(r.id);
    }
  }

  /** Members left to push (pending or in flight), per connector. */
  depth(): Map<string, number> {
    return new Map((this.s.depth.all() as Array<[string, number]>).filter(([, n]) => n > 0));
  }

  /** Members by outbox state: pending, in_flight (unsettled), done (pushed). */
  counts(): { pending: number; in_flight: number; done: number } {
    const out = { pending: 0, in_flight: 0, done: 0 };
    for (const r of this.s.counts.all() as Array<{ state: string; left: number; ok: number }>) {
      if (r.state === 'pending') out.pending += r.left;
      if (r.state === 'in_flight') out.in_flight += r.left;
      out.done += r.ok;
    }
    return out;
  }

  /** enqueued_at of the oldest pending batch, or null. */
  oldestPendingAt(): string | null {
    return (this.s.oldestPendingAt.get() as string | null | undefined) ?? null;
  }

  private hasNewer(c: Change): boolean {
    return this.s.rowForTarget.get(c.subject, c.connectorId, c.recordId, c.op, c.channel, c.purpose) !== undefined;
  }

  private membersOf(row: number): { connectorId: string; members: Member[] } | undefined {
    const cached = this.parsed.get(row);
    if (cached !== undefined) return cached;
    const r = this.s.changesOf.get(row) as { connector_id: string; changes: string | null } | undefined;
    if (r === undefined || r.changes === null) return undefined;
    const parsed = { connectorId: r.connector_id, members: JSON.parse(r.changes) as Member[] };
    this.remember(row, parsed);
    return parsed;
  }

  /** Bounded: rows claimed and never settled here (a caller that gave up) do not pile up. */
  private remember(row: number, members: { connectorId: string; members: Member[] }): void {
    if (this.parsed.size >= 64) this.parsed.delete(this.parsed.keys().next().value as number);
    this.parsed.set(row, members);
  }

  private finish(row: number, now: string): void {
    if (this.s.finishIfSettled.run(now, row).changes > 0) this.parsed.delete(row);
  }
}

/** Smallest or largest subject among the members (the rows' ranges, for I2 and scrub). */
function bound(members: readonly Member[], which: 'min' | 'max'): string {
  let out: string | null = null;
  for (const m of members) {
    if (m === null) continue;
    if (out === null || (which === 'min' ? m[2] < out : m[2] > out)) out = m[2];
  }
  return out ?? '';
}

function prepare(db: Database.Database) {
  const p = (sql: string): Database.Statement<unknown[], unknown> => db.prepare(sql);
  const pluck = (sql: string): Database.Statement<unknown[], unknown> => db.prepare(sql).pluck();
  const active = `state IN ('pending', 'in_flight')`;
  return {
    otherThanErasures: pluck(`SELECT 1 FROM outbox WHERE connector_id = ? AND op <> 'erase' LIMIT 1`),
    overlapping: pluck(`SELECT 1 FROM outbox_batches WHERE connector_id = ? AND ${active} AND min_subject <= ? AND max_subject >= ? LIMIT 1`),
    insert: p(`INSERT INTO outbox_batches (connector_id, state, size, min_subject, max_subject, changes, enqueued_at, updated_at) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?)`),
    oldestPending: p(`SELECT id, attempts, changes, enqueued_at FROM outbox_batches WHERE connector_id = ? AND state = 'pending' ORDER BY id LIMIT 1`),
    keepRest: p(`UPDATE outbox_batches SET size = ?, settled = 0, min_subject = ?, max_subject = ?, changes = ?, updated_at = ? WHERE id = ?`),
    insertTaken: p(
      `INSERT INTO outbox_batches (connector_id, state, size, attempts, min_subject, max_subject, changes, enqueued_at, updated_at) VALUES (?, 'in_flight', ?, ?, ?, ?, ?, ?, ?)`,
    ),
    takeWhole: p(`UPDATE outbox_batches SET state = 'in_flight', attempts = attempts + 1, settled = ?, ok = 0, updated_at = ? WHERE id = ?`),
    settle: p(`UPDATE outbox_batches SET settled = settled + ?, ok = ok + ?, updated_at = ? WHERE id = ? AND state = 'in_flight'`),
    finishIfSettled: p(`UPDATE outbox_batches SET state = 'done', changes = NULL, updated_at = ? WHERE id = ? AND state = 'in_flight' AND settled >= size`),
    attemptsOf: pluck('SELECT attempts FROM outbox_batches WHERE id = ?'),
    changesOf: p('SELECT connector_id, changes FROM outbox_batches WHERE id = ?'),
    rowForTarget: pluck('SELECT 1 FROM outbox WHERE subject = ? AND connector_id = ? AND record_id = ? AND op = ? AND channel = ? AND purpose = ? LIMIT 1'),
    insertSplit: p(
      `INSERT INTO outbox (key, connector_id, record_id, subject, op, channel, purpose, lane, state, attempts, not_before, last_error, change, enqueued_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'normal', ?, ?, ?, ?, ?, ?, ?)`,
    ),
    requeueAll: pluck(`UPDATE outbox_batches SET state = 'pending', settled = 0, ok = 0, updated_at = ? WHERE state = 'in_flight' RETURNING size`),
    requeueOf: pluck(`UPDATE outbox_batches SET state = 'pending', settled = 0, ok = 0, updated_at = ? WHERE state = 'in_flight' AND connector_id = ? RETURNING size`),
    covering: p(`SELECT id, state, changes FROM outbox_batches WHERE ${active} AND min_subject <= ? AND max_subject >= ?`),
    rewrite: p('UPDATE outbox_batches SET changes = ?, settled = settled + ?, updated_at = ? WHERE id = ?'),
    depth: p(`SELECT connector_id, sum(size - settled) FROM outbox_batches WHERE ${active} GROUP BY connector_id`).raw(true),
    counts: p(`SELECT state, sum(size - settled) AS left, sum(ok) AS ok FROM outbox_batches GROUP BY state`),
    oldestPendingAt: pluck(`SELECT min(enqueued_at) FROM outbox_batches WHERE state = 'pending'`),
  };
}

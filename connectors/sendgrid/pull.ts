/**
 * Pull: SendGrid's suppressions as observations, and one record snapshot per address.
 *
 * The store replaces a record's snapshot on every page, and an address can sit on several lists
 * (global unsubscribe + bounce + two groups), each list paged newest-first, so no list order
 * groups an address's entries. Observations are therefore emitted page by page as the lists are
 * read, while the snapshots are merged per address (mapping.ts SnapshotBuilder) and emitted in
 * the last pages, sorted by address, the cursor on the very last one.
 *
 * Memory bound: one entry per suppressed address of the account (its suppression lists, not its
 * contacts): the address plus a flag word and the ids of its groups, roughly 150-250 bytes in V8.
 * 100 000 suppressed addresses ~ 20 MB; 1 000 000 ~ 200 MB. Group suppressions come in one
 * unpaged answer (GET /asm/suppressions), held while the pull runs.
 *
 * Full pull: every list from `now - pullWindowDays` to now, all group suppressions; a snapshot
 * for every address found (absence from a list is meaningful: the snapshot is complete).
 * Incremental: every list from `cursor.since - incrementalOverlapSeconds` to now, and all group
 * suppressions again (no time filter exists; observations only for those created in the
 * window). Snapshots only for addresses found on a time-filtered list in the window: they are
 * suppressed, their groups are exact (all groups were read), `email:*` is denied if seen on the
 * global list and otherwise unknown (an older global unsubscribe may exist). Unknown only ever
 * costs an idempotent re-push; stating "not suppressed" for an address we did not fully read
 * could make the planner add a global unsubscribe for it. An address only newly group-suppressed
 * keeps its stored snapshot (at worst one idempotent group re-push).
 */
import type { ConnectorContext, PullPage, PullReject } from '../../src/connectors/contract.js';
import type { ObservationInput, RecordSnapshot } from '../../src/model/index.js';
import { allGroupSuppressions } from './groups.js';
import type { SendGridHttp } from './http.js';
import { LIST_TYPES, pageList, type ListWindow } from './lists.js';
import { mapGroupSuppression, mapListEntry, SnapshotBuilder, type PurposeMap } from './mapping.js';
import type { SendGridSettings } from './settings.js';

export interface SendGridCursor {
  v: 1;
  /** Epoch ms: start of the run that produced this cursor (ms, so two runs in one second differ). */
  sinceMs: number;
}

export function parseCursor(raw: string | null): SendGridCursor | null {
  if (raw === null) return null;
  try {
    const c = JSON.parse(raw) as unknown;
    if (typeof c === 'object' && c !== null && (c as { v?: unknown }).v === 1 && Number.isInteger((c as { sinceMs?: unknown }).sinceMs)) return c as SendGridCursor;
  } catch {
    // fall through
  }
  return null;
}

export interface PullDeps {
  http: SendGridHttp;
  settings: SendGridSettings;
  ctx: ConnectorContext;
  purposes: PurposeMap;
  now: () => number;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export async function* pullSendGrid(deps: PullDeps, rawCursor: string | null): AsyncGenerator<PullPage> {
  const { http, settings, ctx, purposes } = deps;
  const runStartMs = deps.now();
  const runStart = Math.floor(runStartMs / 1000);
  const prev = parseCursor(rawCursor);
  if (rawCursor !== null && prev === null) ctx.logger.warn({ connector: ctx.id }, 'unreadable sendgrid cursor: doing a full pull');
  const full = prev === null;
  const window: ListWindow = full
    ? { start: Math.max(0, runStart - settings.pullWindowDays * 86_400), end: runStart }
    : { start: Math.max(0, Math.floor(prev.sinceMs / 1000) - settings.incrementalOverlapSeconds), end: runStart };
  const builder = new SnapshotBuilder(ctx.id, purposes, { global: full, groups: true });
  const touched = new Set<string>();

  // Group suppressions: one call, all groups.
  {
    const observations: ObservationInput[] = [];
    const rejects: PullReject[] = [];
    for (const s of await allGroupSuppressions(http)) {
      const m = mapGroupSuppression(ctx.id, purposes, s);
      if (!m.ok) {
        rejects.push(m.reject);
        continue;
      }
      builder.addGroup(m.email, s.groupId);
      if (m.observation === null) continue;
      if (!full && s.created !== null && s.created < window.start) continue;
      observations.push(m.observation);
    }
    const pages = chunks(observations, settings.recordsPerPage);
    if (pages.length === 0 && rejects.length > 0) pages.push([]);
    for (let i = 0; i < pages.length; i++) {
      const page: PullPage = { records: [], observations: pages[i] ?? [], cursor: null };
      if (i === 0 && rejects.length > 0) page.rejects = rejects;
      yield page;
    }
  }

  // The time-filtered lists, page by page.
  for (const type of LIST_TYPES) {
    for await (const entries of pageList(http, type, window, settings.pageSize)) {
      const observations: ObservationInput[] = [];
      const rejects: PullReject[] = [];
      for (const e of entries) {
        const m = mapListEntry(ctx.id, type, e);
        if (!m.ok) {
          rejects.push(m.reject);
          continue;
        }
        builder.addList(m.email, type);
        touched.add(m.email);
        observations.push(m.observation);
      }
      const page: PullPage = { records: [], observations, cursor: null };
      if (rejects.length > 0) page.rejects = rejects;
      yield page;
    }
  }

  // One snapshot per address, the cursor on the last page.
  const emails = full ? builder.emails() : builder.emails((e) => touched.has(e));
  const cursor = JSON.stringify({ v: 1, sinceMs: runStartMs } satisfies SendGridCursor);
  const pages = chunks(emails, settings.recordsPerPage);
  if (pages.length === 0) pages.push([]);
  for (let i = 0; i < pages.length; i++) {
    const records: RecordSnapshot[] = (pages[i] ?? []).map((e) => builder.snapshot(e));
    yield { records, observations: [], cursor: i === pages.length - 1 ? cursor : null };
  }
  ctx.logger.debug({ connector: ctx.id, full, addresses: builder.size, emitted: emails.length }, 'sendgrid pull done');
}

import { z } from 'zod';
import { normalizeEmail } from '../../src/model/email.js';
import type { PullPage, PullReject } from '../../src/connectors/contract.js';
import type { ObservationInput, RecordSnapshot } from '../../src/model/types.js';
import { PAGE_MAX, SEARCH_CAP, SEARCH_LIMIT, type HubSpotApi, type SdkContact, type SearchBody } from './client.js';
import type { CommPrefs } from './commprefs.js';
import { contactProperties, lastModifiedMs, mapContact, type SubscriptionMap } from './mapping.js';

/*
 * Pull. Full: basicApi.getPage pages of 100 (+ one v4 batch read of the page's addresses); the
 * last page carries the cursor "everything modified since the pull started" (minus a margin for
 * HubSpot's clock and search index). Incremental: search on lastmodifieddate, ascending, 200 a
 * page; a page's cursor is the (lastmodifieddate, id) of its last contact.
 *
 * The search API stops at 10,000 results per query. Before paging reaches it, the query is
 * restarted from the last contact seen, as two filter groups (OR):
 *   (lastmodifieddate = T AND hs_object_id > I)  OR  (lastmodifieddate > T)
 * so contacts sharing the timestamp T are neither lost nor read again, and a restart always
 * makes progress (even if more than 10,000 contacts share one millisecond). This relies on ties
 * being returned in id order (HubSpot's and the sandbox's order); a result at or before the
 * position is skipped, never moves the cursor back.
 */

export const HubSpotCursor = z.strictObject({ lastmodifieddate: z.number().int().nonnegative(), id: z.string().regex(/^\d+$/) });
export type HubSpotCursor = z.infer<typeof HubSpotCursor>;

/** Full pull cursors start this far before the pull (clock skew, search indexing delay). */
export const FULL_PULL_MARGIN_MS = 5 * 60_000;

export function encodeCursor(c: HubSpotCursor): string {
  return JSON.stringify({ lastmodifieddate: c.lastmodifieddate, id: c.id });
}

export function decodeCursor(raw: string): HubSpotCursor {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new Error(`hubspot cursor is not JSON: ${raw.slice(0, 80)}`);
  }
  const r = HubSpotCursor.safeParse(v);
  if (!r.success) throw new Error(`hubspot cursor is not {lastmodifieddate, id}: ${raw.slice(0, 80)}`);
  return r.data;
}

/** (a) strictly after (b) in (lastmodifieddate, id) order. */
function after(ms: number, id: string, pos: HubSpotCursor): boolean {
  if (ms !== pos.lastmodifieddate) return ms > pos.lastmodifieddate;
  const a = BigInt(id);
  const b = BigInt(pos.id);
  return a > b;
}

export interface PullDeps {
  api: HubSpotApi;
  prefs: CommPrefs;
  connectorId: string;
  subscriptions: SubscriptionMap;
  now?: () => number;
}

/** Records, observations and rejects for a page of contacts (one v4 batch read per 100 addresses). */
export async function mapPage(deps: PullDeps, contacts: readonly SdkContact[]): Promise<{ records: RecordSnapshot[]; observations: ObservationInput[]; rejects: PullReject[] }> {
  const emails: string[] = [];
  for (const c of contacts) {
    const e = normalizeEmail(c.properties['email']);
    if (e.ok) emails.push(e.email);
  }
  const statuses = deps.subscriptions.size > 0 && emails.length > 0 ? await deps.prefs.readStatuses(emails) : undefined;
  const records: RecordSnapshot[] = [];
  const observations: ObservationInput[] = [];
  const rejects: PullReject[] = [];
  for (const c of contacts) {
    const e = normalizeEmail(c.properties['email']);
    const mine = statuses && e.ok ? statuses.get(e.email) : undefined;
    const m = mapContact(c, { connectorId: deps.connectorId, subscriptions: deps.subscriptions, statuses: mine, how: 'pull' });
    if (!m.ok) {
      rejects.push(m.reject);
      continue;
    }
    records.push(m.record);
    observations.push(...m.observations);
  }
  return { records, observations, rejects };
}

function page(m: Awaited<ReturnType<typeof mapPage>>, cursor: string | null): PullPage {
  const p: PullPage = { records: m.records, observations: m.observations, cursor };
  if (m.rejects.length > 0) p.rejects = m.rejects;
  return p;
}

export async function* fullPull(deps: PullDeps): AsyncGenerator<PullPage> {
  const started = (deps.now ?? Date.now)();
  const properties = contactProperties(deps.subscriptions);
  let next: string | undefined;
  do {
    const res = await deps.api.getPage(PAGE_MAX, next, properties);
    next = res.paging?.next?.after;
    const m = await mapPage(deps, res.results);
    yield page(m, next === undefined ? encodeCursor({ lastmodifieddate: Math.max(0, started - FULL_PULL_MARGIN_MS), id: '0' }) : null);
  } while (next !== undefined);
}

export function searchBody(pos: HubSpotCursor, properties: string[], afterToken: string | undefined): SearchBody {
  const ms = String(pos.lastmodifieddate);
  const body: SearchBody = {
    filterGroups: [
      {
        filters: [
          { propertyName: 'lastmodifieddate', operator: 'EQ', value: ms },
          { propertyName: 'hs_object_id', operator: 'GT', value: pos.id },
        ],
      },
      { filters: [{ propertyName: 'lastmodifieddate', operator: 'GT', value: ms }] },
    ],
    sorts: [{ propertyName: 'lastmodifieddate', direction: 'ASCENDING' }],
    properties,
    limit: SEARCH_LIMIT,
  };
  if (afterToken !== undefined) body.after = afterToken;
  return body;
}

export async function* incrementalPull(deps: PullDeps, cursor: HubSpotCursor): AsyncGenerator<PullPage> {
  const properties = contactProperties(deps.subscriptions);
  let pos = cursor;
  let queryPos = cursor;
  let afterToken: string | undefined;
  for (;;) {
    const res = await deps.api.search(searchBody(queryPos, properties, afterToken));
    const fresh: SdkContact[] = [];
    for (const c of res.results) {
      const ms = lastModifiedMs(c);
      if (ms === null || !after(ms, c.id, pos)) continue;
      fresh.push(c);
      pos = { lastmodifieddate: ms, id: c.id };
    }
    const m = await mapPage(deps, fresh);
    if (fresh.length > 0 || m.rejects.length > 0) yield page(m, encodeCursor(pos));
    const next = res.paging?.next?.after;
    if (next === undefined || res.results.length === 0) return;
    if (Number(next) + SEARCH_LIMIT > SEARCH_CAP) {
      // The next page would cross the 10,000-result cap: restart the query from the last contact seen.
      if (pos.lastmodifieddate === queryPos.lastmodifieddate && pos.id === queryPos.id) throw new Error('hubspot search made no progress before the 10,000-result cap');
      queryPos = pos;
      afterToken = undefined;
    } else afterToken = next;
  }
}

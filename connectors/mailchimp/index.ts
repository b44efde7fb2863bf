import { defineConnector } from '../../src/connectors/contract.js';
import type { CheckResult, Connector, ConnectorCapabilities, ConnectorContext, PullPage, PullReject, PushResult } from '../../src/connectors/contract.js';
import { ALL_PURPOSES, type Change, type ObservationInput, type RecordSnapshot } from '../../src/model/types.js';
import { BULK_MAX } from './bulk.js';
import { McApiError, McHttp, type McHttpOptions } from './http.js';
import { mapMember, type ListMapping, type McMember } from './mapping.js';
import { getMembersPage, nativesOf, sampleNatives, type ListNatives } from './members.js';
import { pushChanges } from './push.js';
import { mailchimpSettings, type MailchimpSettings } from './settings.js';
import { createWebhook, presentedToken } from './webhook.js';

export { mailchimpSettings } from './settings.js';
export type { MailchimpSettings } from './settings.js';
export { COMPLIANCE_REASON } from './push.js';

/**
 * Mailchimp Marketing API v3 (axios): one or more audiences (lists). See mapping.ts for what a
 * member means, push.ts for how changes are written, webhook.ts for the instant path.
 *
 * Capabilities: (email, *) plus (email, P) for every purpose mapped in a list; suppression on
 * email through `unsubscribed` (Mailchimp's `cleaned` cannot be set through the API);
 * pushGrants (resubscribe 'pending' only: a confirmation email; purpose grants set the
 * marketing permission); erase (delete-permanent); bare addresses only with
 * suppressUnknownAddresses.
 */
export const mailchimpConnector = defineConnector({
  kind: 'mailchimp',
  configSchema: mailchimpSettings,
  create: (settings, ctx) => createMailchimpConnector(settings, ctx),
});

/** Full bulk calls (500 members each) one push may fill. */
export const PUSH_CALLS = 10;

export interface MailchimpConnectorOptions {
  http?: McHttpOptions;
  /** Clock (tests). */
  now?: () => number;
}

/** Cursor: per list, the ISO time to ask `since_last_changed` from next. */
interface Cursor {
  v: 1;
  lists: Record<string, string>;
}

export function parseCursor(raw: string | null): Cursor {
  if (raw === null || raw === '') return { v: 1, lists: {} };
  try {
    const c = JSON.parse(raw) as Partial<Cursor>;
    const lists: Record<string, string> = {};
    if (c && typeof c.lists === 'object' && c.lists !== null) {
      for (const [k, v] of Object.entries(c.lists)) if (typeof v === 'string' && !Number.isNaN(Date.parse(v))) lists[k] = v;
    }
    return { v: 1, lists };
  } catch {
    return { v: 1, lists: {} };
  }
}

/** Slack under the pull's start time for the next incremental window. */
const CURSOR_SLACK_MS = 5_000;

export function createMailchimpConnector(settings: MailchimpSettings, ctx: ConnectorContext, opts: MailchimpConnectorOptions = {}): Connector {
  const http = new McHttp(settings, ctx, opts.http ?? {});
  const now = opts.now ?? Date.now;
  const lists = new Map<string, ListMapping>(settings.lists.map((l) => [l.id, { listId: l.id, purposes: new Map(Object.entries(l.purposes)) }] as const));
  /** list -> canonical purpose -> native ids */
  const natives = new Map<string, Map<string, string[]>>();
  for (const l of settings.lists) {
    const byPurpose = new Map<string, string[]>();
    for (const [native, purpose] of Object.entries(l.purposes)) byPurpose.set(purpose, [...(byPurpose.get(purpose) ?? []), native]);
    natives.set(l.id, byPurpose);
  }
  const purposes = [...new Set(settings.lists.flatMap((l) => Object.values(l.purposes)))].sort();
  const unknownPurposes = ctx.purposes.length > 0 ? purposes.filter((p) => !ctx.purposes.includes(p)) : [];
  if (unknownPurposes.length > 0) ctx.logger.warn({ connector: ctx.id, purposes: unknownPurposes }, 'mailchimp purposes not declared in config');

  // Which native ids are GDPR permissions vs interests, learned from pulled members or one sample.
  const kindsCache = new Map<string, Promise<ListNatives>>();
  const learn = (listId: string, m: McMember): void => {
    if (kindsCache.has(listId)) return;
    const n = nativesOf(m);
    if (n.permissions.size > 0 || n.interests.size > 0) kindsCache.set(listId, Promise.resolve(n));
  };
  const listNatives = (listId: string): Promise<ListNatives> => {
    let p = kindsCache.get(listId);
    if (p === undefined) {
      p = sampleNatives(http, listId);
      kindsCache.set(listId, p);
      p.then(
        (n) => {
          if (n.permissions.size === 0 && n.interests.size === 0) kindsCache.delete(listId); // empty list: ask again later
        },
        () => kindsCache.delete(listId),
      );
    }
    return p;
  };

  const capabilities: ConnectorCapabilities = {
    consent: [ALL_PURPOSES, ...purposes].map((purpose) => ({ channel: 'email' as const, purpose })),
    suppression: ['email'],
    pushGrants: true,
    erase: true,
    acceptsUnknownAddresses: settings.suppressUnknownAddresses,
  };

  /**
   * One list, page by page (offset paging, `pageSize` members a page). The list's next window
   * starts when this pull of it began, minus CURSOR_SLACK_MS: a member changed behind our
   * offset during the pull is read again next time, and re-reading is harmless (observation ids
   * dedupe). The start is our clock, bounded by the server's (Date header, 1 s resolution) so a
   * clock ahead of Mailchimp's cannot skip changes.
   */
  async function* pullList(list: ListMapping, since: string | null, cursor: Cursor, full: boolean): AsyncGenerator<PullPage> {
    let offset = 0;
    const localStart = now();
    let serverStart: number | null = null;
    for (;;) {
      const page = await getMembersPage(http, list.listId, { offset, count: settings.pageSize, since });
      if (offset === 0 && page.serverTime !== null) serverStart = page.serverTime + 999;
      const records: RecordSnapshot[] = [];
      const observations: ObservationInput[] = [];
      const rejects: PullReject[] = [];
      for (const m of page.members) {
        learn(list.listId, m);
        const mapped = mapMember(ctx.id, list, m);
        if (mapped.record) records.push(mapped.record);
        observations.push(...mapped.observations);
        if (mapped.reject) rejects.push(mapped.reject);
      }
      offset += page.members.length;
      const done = page.members.length === 0 || offset >= page.totalItems;
      if (done) {
        const start = serverStart === null ? localStart : Math.min(localStart, serverStart);
        cursor.lists[list.listId] = new Date(start - CURSOR_SLACK_MS).toISOString();
      }
      // Mid-list pages keep the list's previous position (a resume re-reads its window); a full
      // pull has no resumable position until its first list is complete.
      const emit = full && Object.keys(cursor.lists).length === 0 ? null : JSON.stringify(cursor);
      const out: PullPage = { records, observations, cursor: emit };
      if (rejects.length > 0) out.rejects = rejects;
      yield out;
      if (done) return;
    }
  }

  const connector: Connector = {
    id: ctx.id,
    kind: 'mailchimp',
    // Changes per push: every scope of BULK_MAX members (one member's changes share one bulk
    // item), times PUSH_CALLS, so a backlog fills whole bulk calls.
    limits: { batchSize: BULK_MAX * capabilities.consent.length * PUSH_CALLS, requestsPerInterval: 1_000_000, intervalMs: 1_000, concurrency: settings.maxConnections },
    capabilities,

    async *pull(rawCursor: string | null): AsyncIterable<PullPage> {
      const full = rawCursor === null;
      const previous = parseCursor(rawCursor);
      // A full pull starts from nothing; an incremental one from the previous positions (a list
      // added to the config since has none: it is read in full).
      const cursor: Cursor = { v: 1, lists: full ? {} : { ...previous.lists } };
      for (const l of settings.lists) {
        const list = lists.get(l.id);
        if (!list) continue;
        const since = full ? null : (previous.lists[l.id] ?? null);
        yield* pullList(list, since, cursor, full);
      }
    },

    push(changes: Change[]): Promise<PushResult[]> {
      return pushChanges({ http, settings, natives, listNatives }, changes);
    },

    async check(): Promise<CheckResult> {
      const details: string[] = [];
      try {
        await http.request({ method: 'GET', path: '/ping', endpoint: '/ping' });
        details.push(`API reachable at ${http.baseUrl} with the configured key`);
      } catch (err) {
        return { ok: false, details: [`cannot reach ${http.baseUrl}: ${(err as Error).message}`] };
      }
      let ok = true;
      for (const l of settings.lists) {
        try {
          const res = await http.get<{ name?: string; stats?: { member_count?: number; unsubscribe_count?: number; cleaned_count?: number }; marketing_permissions?: boolean }>({
            path: `/lists/${encodeURIComponent(l.id)}`,
            endpoint: '/lists/{list_id}',
          });
          const s = res.data.stats ?? {};
          details.push(
            `list ${l.id} "${res.data.name ?? '?'}": ${s.member_count ?? '?'} subscribed, ${s.unsubscribe_count ?? '?'} unsubscribed, ${s.cleaned_count ?? '?'} cleaned; GDPR marketing permissions ${res.data.marketing_permissions === true ? 'on' : 'off'}`,
          );
        } catch (err) {
          ok = false;
          details.push(`list ${l.id}: ${(err as Error).message}`);
          continue;
        }
        const mapped = Object.keys(l.purposes);
        if (mapped.length > 0) {
          try {
            const n = await listNatives(l.id);
            if (n.permissions.size === 0 && n.interests.size === 0) details.push(`list ${l.id}: no member yet, purpose ids not verified`);
            else {
              const missing = mapped.filter((id) => !n.permissions.has(id) && !n.interests.has(id));
              if (missing.length > 0) {
                ok = false;
                details.push(`list ${l.id}: purpose ids not found as marketing permission or interest: ${missing.join(', ')}`);
              } else details.push(`list ${l.id}: purposes ${Object.entries(l.purposes).map(([id, p]) => `${id} (${n.permissions.has(id) ? 'marketing permission' : 'interest'}) -> ${p}`).join(', ')}`);
            }
          } catch (err) {
            details.push(`list ${l.id}: cannot verify purpose ids: ${(err as Error).message}`);
          }
        }
        if (settings.webhookToken !== undefined) {
          try {
            const res = await http.get<{ webhooks?: Array<{ url?: string; sources?: Record<string, boolean> }> }>({
              path: `/lists/${encodeURIComponent(l.id)}/webhooks`,
              endpoint: '/lists/{list_id}/webhooks',
            });
            const ours = (res.data.webhooks ?? []).filter((h) => typeof h.url === 'string' && presentedToken(h.url) === settings.webhookToken);
            if (ours.length === 0) details.push(`list ${l.id}: no webhook carries the configured token (only pulls will see changes)`);
            for (const h of ours) {
              details.push(
                h.sources?.['api'] === true
                  ? `list ${l.id}: the consentd webhook includes source "api": consentd's own pushes echo back (harmless, but disable "api" to save deliveries)`
                  : `list ${l.id}: the consentd webhook excludes source "api" (no echoes of consentd's pushes)`,
              );
            }
          } catch (err) {
            if (err instanceof McApiError && err.status === 403) details.push(`list ${l.id}: the key cannot read webhooks`);
            else details.push(`list ${l.id}: cannot read webhooks: ${(err as Error).message}`);
          }
        }
      }
      details.push(`resubscribe: ${settings.resubscribe}${settings.resubscribe === 'never' ? ' (grants to unsubscribed members fail)' : ' (grants send a confirmation email)'}`);
      return { ok, details };
    },

    close: () => http.close(),
  };
  if (settings.webhookToken !== undefined) {
    return { ...connector, webhook: createWebhook({ connectorId: ctx.id, token: settings.webhookToken, lists, http }) };
  }
  return connector;
}

import { isRecord, nowSeconds, type ApiRequest, type ApiResponse, type SgContext } from './context.js';
import { sgError } from './errors.js';
import type { Entry, ListType } from './state.js';

export const LIST_MAX = 500;

function intParam(q: URLSearchParams, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw sgError(400, `${name} must be a non-negative integer`, name);
  return n;
}

/** start_time / end_time (unix seconds, inclusive), limit (<= 500, default 500), offset. */
export function pageParams(q: URLSearchParams): { start: number | undefined; end: number | undefined; limit: number; offset: number } {
  const limit = intParam(q, 'limit') ?? LIST_MAX;
  if (limit > LIST_MAX) throw sgError(400, `limit must be less than or equal to ${LIST_MAX}`, 'limit');
  return { start: intParam(q, 'start_time'), end: intParam(q, 'end_time'), limit, offset: intParam(q, 'offset') ?? 0 };
}

function view(type: ListType, e: Entry): Record<string, unknown> {
  switch (type) {
    case 'bounces':
    case 'blocks':
      return { created: e.created, email: e.email, reason: e.reason ?? '', status: e.status ?? '' };
    case 'spam_reports':
      return { created: e.created, email: e.email, ip: e.ip ?? '' };
    case 'invalid_emails':
      return { created: e.created, email: e.email, reason: e.reason ?? '' };
  }
}

export const BOUNCE_REASON = '550 5.1.1 The email account that you tried to reach does not exist.';
export const BLOCK_REASON = '554 5.7.1 Service unavailable; client host blocked using a blocklist';

/** Records a deliverability fact and emits its event (bounce / bounce type blocked / spamreport / dropped). */
export function addToList(ctx: SgContext, type: ListType, email: string, extra: Partial<Entry> = {}): boolean {
  const created = extra.created ?? nowSeconds(ctx);
  const entry: Entry = { email, created };
  const now = ctx.now();
  switch (type) {
    case 'bounces':
      entry.reason = extra.reason ?? BOUNCE_REASON;
      entry.status = extra.status ?? '5.1.1';
      break;
    case 'blocks':
      entry.reason = extra.reason ?? BLOCK_REASON;
      entry.status = extra.status ?? '5.7.1';
      break;
    case 'spam_reports':
      entry.ip = extra.ip ?? '192.0.2.10';
      break;
    case 'invalid_emails':
      entry.reason = extra.reason ?? 'Mail domain mentioned in email address is unknown';
      break;
  }
  const isNew = ctx.state.lists[type].add(entry);
  if (type === 'bounces') ctx.events.emit({ email, event: 'bounce', type: 'bounce', reason: entry.reason ?? '', status: entry.status ?? '' }, now);
  else if (type === 'blocks') ctx.events.emit({ email, event: 'bounce', type: 'blocked', reason: entry.reason ?? '', status: entry.status ?? '' }, now);
  else if (type === 'spam_reports') ctx.events.emit({ email, event: 'spamreport' }, now);
  else ctx.events.emit({ email, event: 'dropped', reason: 'Invalid' }, now);
  return isNew;
}

/** GET /suppression/{type}, DELETE /suppression/{type} {delete_all, emails} */
export function listRoute(ctx: SgContext, type: ListType, req: ApiRequest): ApiResponse {
  const list = ctx.state.lists[type];
  if (req.method === 'GET') {
    const { start, end, limit, offset } = pageParams(req.query);
    return { status: 200, body: list.query(start, end).slice(offset, offset + limit).map((e) => view(type, e)) };
  }
  if (req.method === 'DELETE') {
    const b = isRecord(req.body) ? req.body : {};
    if (b['delete_all'] === true) list.clear();
    else if (Array.isArray(b['emails'])) for (const e of b['emails']) list.delete(String(e));
    else throw sgError(400, 'either delete_all or emails is required', null);
    return { status: 204 };
  }
  throw sgError(405, 'method not allowed');
}

/** GET|DELETE /suppression/{type}/{email} */
export function listEntryRoute(ctx: SgContext, type: ListType, email: string, req: ApiRequest): ApiResponse {
  const list = ctx.state.lists[type];
  if (req.method === 'GET') {
    const e = list.get(email);
    return { status: 200, body: e ? [view(type, e)] : [] };
  }
  if (req.method === 'DELETE') {
    list.delete(email);
    return { status: 204 };
  }
  throw sgError(405, 'method not allowed');
}

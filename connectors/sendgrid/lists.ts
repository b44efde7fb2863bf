import type { SendGridHttp } from './http.js';

/**
 * The time-filtered suppression lists (GET /suppression/{type}?start_time&end_time&limit&offset,
 * newest first) and their bulk delete. `unsubscribes` is the global unsubscribe list's read
 * side; it is written through /asm/suppressions/global (suppressions.ts).
 */
export type ListType = 'unsubscribes' | 'bounces' | 'blocks' | 'spam_reports' | 'invalid_emails';
export const LIST_TYPES: readonly ListType[] = ['unsubscribes', 'bounces', 'blocks', 'spam_reports', 'invalid_emails'];
/** Lists an erasure deletes from (the global unsubscribe is kept: see index.ts). */
export const DELETABLE_LISTS: readonly Exclude<ListType, 'unsubscribes'>[] = ['bounces', 'blocks', 'spam_reports', 'invalid_emails'];

export interface ListEntry {
  /** unix seconds */
  created: number | null;
  email: string;
  reason?: string;
  status?: string;
}

export interface ListWindow {
  /** unix seconds, inclusive */
  start: number;
  end: number;
}

function entry(raw: unknown): ListEntry | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const o = raw as Record<string, unknown>;
  if (typeof o['email'] !== 'string') return null;
  const e: ListEntry = { email: o['email'], created: typeof o['created'] === 'number' && Number.isFinite(o['created']) ? o['created'] : null };
  if (typeof o['reason'] === 'string' && o['reason'] !== '') e.reason = o['reason'];
  if (typeof o['status'] === 'string' && o['status'] !== '') e.status = o['status'];
  return e;
}

/**
 * Every entry of one list created inside the window, page by page (offset paging). The window
 * is closed (end = the run's start), so entries added while paging do not shift pages; a
 * deletion while paging can hide one entry until the next run (SendGrid offers nothing better).
 */
export async function* pageList(http: SendGridHttp, type: ListType, window: ListWindow, pageSize: number): AsyncGenerator<ListEntry[]> {
  for (let offset = 0; ; offset += pageSize) {
    const res = await http.read<unknown>({
      method: 'GET',
      path: `/suppression/${type}`,
      endpoint: `GET /suppression/${type}`,
      params: { start_time: window.start, end_time: window.end, limit: pageSize, offset },
    });
    const raw = Array.isArray(res.data) ? (res.data as unknown[]) : [];
    const entries = raw.map(entry).filter((e): e is ListEntry => e !== null);
    if (entries.length > 0) yield entries;
    if (raw.length < pageSize) return;
  }
}

/** DELETE /suppression/{type} {emails}: removes the addresses (absent ones are ignored). */
export async function deleteFromList(http: SendGridHttp, type: Exclude<ListType, 'unsubscribes'>, emails: string[]): Promise<void> {
  await http.request({ method: 'DELETE', path: `/suppression/${type}`, endpoint: `DELETE /suppression/${type}`, data: { emails } });
}

import type { PushResult } from '../../src/connectors/contract.js';
import { classifyError } from '../../src/engine/retry.js';
import type { McHttp } from './http.js';

/**
 * Bulk subscribe / unsubscribe: `POST /lists/{id}` with up to 500 members and
 * update_existing:true, answered synchronously with per-member errors (matched back by
 * email_address). One call per 500 members; the calls of one push run in parallel through the
 * connection queue.
 */

export const BULK_MAX = 500;

export interface BulkMember {
  email_address: string;
  status?: 'unsubscribed' | 'pending' | 'subscribed';
  status_if_new?: 'unsubscribed' | 'pending' | 'subscribed' | 'transactional';
  marketing_permissions?: Array<{ marketing_permission_id: string; enabled: boolean }>;
  interests?: Record<string, boolean>;
}

export interface BulkError {
  email_address?: string;
  error?: string;
  error_code?: string;
}

/** A per-change verdict without its key. */
export type Outcome =
  | { status: 'ok' }
  | { status: 'retry'; reason: string; retryAfterMs?: number }
  | { status: 'failed'; reason: string; code?: string };

export const emailKey = (e: string): string => e.trim().toLowerCase();

const COMPLIANCE = /compliance state/i;
const FORGOTTEN = /permanently deleted|forgotten/i;
/** Item errors that say "later": classified as a 503 by the engine's classifier. */
const TRANSIENT = /temporar|unavailable|try again later|timed? ?out|too many|rate.?limit|internal (server )?error/i;

/** Outcome of a thrown call (429 / 5xx / timeouts retry, with Retry-After when given). */
export function outcomeOfError(err: unknown): Outcome {
  const v = classifyError(err);
  const reason = err instanceof Error ? err.message : v.reason;
  if (v.retry) return v.waitMs === undefined ? { status: 'retry', reason: v.reason } : { status: 'retry', reason: v.reason, retryAfterMs: v.waitMs };
  const status = (err as { status?: unknown } | null)?.status;
  return { status: 'failed', reason, ...(typeof status === 'number' ? { code: `HTTP_${status}` } : {}) };
}

/**
 * Verdict for one member of a bulk answer's errors[]. Compliance state (cannot resubscribe)
 * and forgotten addresses are permanent; "try again later" kinds retry; the rest is permanent,
 * as the classifier says for a 400.
 */
export function outcomeOfItemError(e: BulkError): Outcome {
  const message = e.error ?? 'unknown error';
  if (COMPLIANCE.test(message)) return { status: 'failed', reason: `Member In Compliance State: ${message}`, code: 'COMPLIANCE_STATE' };
  if (FORGOTTEN.test(message)) return { status: 'failed', reason: message, code: 'FORGOTTEN_EMAIL' };
  const v = classifyError({ status: TRANSIENT.test(message) ? 503 : 400, message: `${e.error_code ?? 'ERROR'}: ${message}` });
  return v.retry ? { status: 'retry', reason: v.reason } : { status: 'failed', reason: v.reason, ...(e.error_code ? { code: e.error_code } : {}) };
}

export function isForgotten(o: Outcome): boolean {
  return o.status === 'failed' && o.code === 'FORGOTTEN_EMAIL';
}

interface BulkAnswer {
  errors?: BulkError[];
  error_count?: number;
}

/** Upserts members (any count; chunks of 500) and answers an outcome per email (lowercased). */
export async function bulkUpsert(http: McHttp, listId: string, members: BulkMember[]): Promise<Map<string, Outcome>> {
  const out = new Map<string, Outcome>();
  const chunks: BulkMember[][] = [];
  for (let i = 0; i < members.length; i += BULK_MAX) chunks.push(members.slice(i, i + BULK_MAX));
  await Promise.all(
    chunks.map(async (chunk) => {
      let answer: BulkAnswer;
      try {
        const res = await http.request<BulkAnswer>({
          method: 'POST',
          path: `/lists/${encodeURIComponent(listId)}`,
          endpoint: '/lists/{list_id}',
          data: { members: chunk, update_existing: true },
        });
        answer = res.data;
      } catch (err) {
        const o = outcomeOfError(err);
        for (const m of chunk) out.set(emailKey(m.email_address), o);
        return;
      }
      const errors = new Map<string, BulkError>();
      for (const e of answer.errors ?? []) if (typeof e.email_address === 'string') errors.set(emailKey(e.email_address), e);
      for (const m of chunk) {
        const e = errors.get(emailKey(m.email_address));
        out.set(emailKey(m.email_address), e === undefined ? { status: 'ok' } : outcomeOfItemError(e));
      }
    }),
  );
  return out;
}

export function withKey(key: string, o: Outcome): PushResult {
  return { key, ...o };
}

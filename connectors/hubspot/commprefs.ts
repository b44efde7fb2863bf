import { normalizeEmail } from '../../src/model/email.js';
import { BATCH_MAX, classifyHubSpotError, type HubSpotApi } from './client.js';
import { parseV4Status, type SubStatus } from './mapping.js';

/*
 * Communication preferences: which API the account has (v4 batch, or v3 per address), and v4
 * batch reads of subscription statuses. `auto` probes v4 once (the first batch read) and falls
 * back to v3 for good on a 404.
 */

export type CommPrefsMode = 'v4' | 'v3';
export const V4 = '/communication-preferences/v4/statuses';
const PROBE_EMAIL = 'consentd-probe@example.com';

export interface V4Error {
  category?: string;
  subCategory?: string;
  message?: string;
  context?: { ids?: string[] };
}

export interface V4BatchAnswer {
  results: Array<Record<string, unknown>>;
  errors: V4Error[];
}

export function v4Answer(body: unknown): V4BatchAnswer {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  return {
    results: Array.isArray(b['results']) ? (b['results'] as Array<Record<string, unknown>>) : [],
    errors: Array.isArray(b['errors']) ? (b['errors'] as V4Error[]) : [],
  };
}

/** A per-item error HubSpot says is worth retrying (internal error, rate limit inside a batch). */
export function transientItemError(e: V4Error): boolean {
  return e.category === 'INTERNAL_ERROR' || e.category === 'RATE_LIMIT' || e.category === 'SERVICE_UNAVAILABLE';
}

export class CommPrefs {
  private mode: CommPrefsMode | null;

  constructor(
    private readonly api: HubSpotApi,
    setting: 'v4' | 'v3' | 'auto',
  ) {
    this.mode = setting === 'auto' ? null : setting;
  }

  /** The mode if known (auto before its probe: null). */
  get known(): CommPrefsMode | null {
    return this.mode;
  }

  /** The mode, probing v4 once in auto. Errors other than 404 propagate (and do not settle the mode). */
  async resolve(): Promise<CommPrefsMode> {
    if (this.mode !== null) return this.mode;
    await this.readStatuses([PROBE_EMAIL]);
    return this.mode ?? 'v3';
  }

  /**
   * v4 statuses of addresses (normalized email -> subscription id -> status), <= 100 per call.
   * Returns undefined in v3 mode. Transiently failed items are retried twice; addresses still
   * without an answer are absent from the map (the caller falls back to contact properties).
   */
  async readStatuses(emails: readonly string[]): Promise<Map<string, Map<string, SubStatus>> | undefined> {
    if (this.mode === 'v3') return undefined;
    const out = new Map<string, Map<string, SubStatus>>();
    const unique = [...new Set(emails)];
    for (let i = 0; i < unique.length; i += BATCH_MAX) {
      let todo = unique.slice(i, i + BATCH_MAX);
      for (let round = 0; round < 3 && todo.length > 0; round++) {
        let answer: V4BatchAnswer;
        try {
          answer = v4Answer((await this.api.rawRead('POST', `${V4}/batch/read`, { inputs: todo }, { channel: 'EMAIL' })).body);
        } catch (e) {
          if (this.mode === null && classifyHubSpotError(e).status === 404) {
            this.mode = 'v3';
            return undefined;
          }
          throw e;
        }
        this.mode ??= 'v4';
        for (const r of answer.results) {
          const who = normalizeEmail(r['subscriberIdString']);
          if (!who.ok) continue;
          const map = out.get(who.email) ?? new Map<string, SubStatus>();
          for (const s of Array.isArray(r['statuses']) ? (r['statuses'] as unknown[]) : []) {
            const st = parseV4Status(s);
            if (st) map.set(st.subscriptionId, st);
          }
          out.set(who.email, map);
        }
        const retry = new Set(answer.errors.filter(transientItemError).flatMap((e) => e.context?.ids ?? []));
        todo = todo.filter((t) => retry.has(t));
      }
    }
    return out;
  }
}

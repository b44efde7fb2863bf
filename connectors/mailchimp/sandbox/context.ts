import type { Faults } from '../../../src/sandbox/faults.js';
import type { MailchimpState } from './state.js';
import type { MailchimpWebhooks } from './webhooks.js';

/** What every handler needs. */
export interface McContext {
  state: MailchimpState;
  hooks: MailchimpWebhooks;
  faults: Faults;
  now(): number;
  /** The sandbox's root URL (no /3.0), for URLs it hands out (batch results). */
  rootUrl(): string;
}

/** One API call, independent of HTTP (the batch runner replays operations through it). */
export interface ApiRequest {
  method: string;
  /** Path under /3.0, e.g. "/lists/abc/members". */
  path: string;
  query: URLSearchParams;
  body: unknown;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

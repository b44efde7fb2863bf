import type { Faults } from '../../../src/sandbox/faults.js';
import type { SendGridEventWebhook } from './event-webhook.js';
import type { SendGridState } from './state.js';

export interface SgContext {
  state: SendGridState;
  events: SendGridEventWebhook;
  faults: Faults;
  now(): number;
}

export interface ApiRequest {
  method: string;
  /** Path under /v3, e.g. "/asm/groups". */
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

export const nowSeconds = (ctx: SgContext): number => Math.floor(ctx.now() / 1000);

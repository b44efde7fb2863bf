import type { Faults } from '../../../src/sandbox/faults.js';
import type { SendGridEventWebhook } from './event-webhook.js';
import type { SendGridState } from './state.js';

export interface SgContext {
  state: SendGridState;
  events: SendGridEventWebhook;
  faults: Faults;
  now(): number;
}

export { isRecord, type ApiRequest, type ApiResponse } from '../../../src/sandbox/api.js';

export const nowSeconds = (ctx: SgContext): number => Math.floor(ctx.now() / 1000);

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

export { isRecord, type ApiRequest, type ApiResponse } from '../../../src/sandbox/api.js';

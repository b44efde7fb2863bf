import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { secret } from '../../src/config/secret.js';
import { Purpose } from '../../src/model/types.js';

/** Global (US) API base. */
export const SENDGRID_BASE_URL = 'https://api.sendgrid.com/v3';
/** EU regional subusers (data residency) must use this base instead. */
export const SENDGRID_EU_BASE_URL = 'https://api.eu.sendgrid.com/v3';

/** SendGrid documents no maximum for `recipient_emails`; 1000 per call keeps bodies small (~40 KB). */
export const MAX_RECIPIENTS_PER_CALL = 1000;
/** Full bulk calls one push may fill by default (settings.batchSize). */
export const PUSH_CALLS = 10;
/** The suppression list endpoints answer at most 500 entries per page. */
export const MAX_LIST_PAGE = 500;

function isPublicKey(b64: string): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' });
    return key.asymmetricKeyType === 'ec';
  } catch {
    return false;
  }
}

/**
 * Settings of a `kind: sendgrid` connector (strict: unknown keys are errors).
 *
 * `purposes` follows the convention of every connector kind: native name -> canonical id. For
 * SendGrid the native name is the unsubscribe (ASM) group id: `{ "101": newsletter }`. Group
 * suppressions of unmapped groups are read (they matter for erasure) but state nothing.
 * Several groups may map to one purpose: a denial is then written to each of them.
 *
 * Webhook timestamp window (`webhookMaxAgeSeconds`, default 600 = 10 minutes): SendGrid
 * documents none. It retries a failed delivery for up to 72 hours, but every attempt is signed
 * afresh with the time of that attempt (the sandbox does the same: `WebhookSender` calls the
 * signing factory per attempt), so a genuine delivery is always seconds old when it arrives; a
 * late *event* is fine too, because the event's own `timestamp` is what the policy orders by,
 * not the header. 10 minutes absorbs clock skew and slow proxies while keeping the replay
 * window of a captured request short. Timestamps more than 5 minutes in the future are refused.
 */
export const sendgridSettings = z.strictObject({
  /** API key (Bearer). Scopes: asm.groups.read, asm.groups.suppressions.*, asm.suppressions.global.*, suppression.*.read/delete. */
  apiKey: secret(z.string().min(1)),
  /** API base ending in /v3. EU regional subusers: https://api.eu.sendgrid.com/v3. */
  baseUrl: z
    .string()
    .regex(/^https?:\/\/[^\s]+$/, 'baseUrl must be an http(s) URL')
    .default(SENDGRID_BASE_URL)
    .transform((u) => u.replace(/\/+$/, '')),
  /** ASM group id -> canonical purpose. */
  purposes: z.record(z.string().regex(/^\d+$/, 'a SendGrid unsubscribe group id is a number'), Purpose).default({}),
  /** Base64 DER (SPKI) ECDSA P-256 public key from Settings > Mail Settings > Signed Event Webhook. Without it the webhook is disabled. */
  webhookPublicKey: z.string().min(1).refine(isPublicKey, 'webhookPublicKey must be a base64 DER (SPKI) EC public key').optional(),
  /** Oldest signed timestamp accepted on a webhook delivery (see above). */
  webhookMaxAgeSeconds: z.number().int().positive().default(600),
  /** A first full pull reads suppressions created in the last this many days (default two years). */
  pullWindowDays: z.number().int().positive().default(730),
  /** An incremental pull starts this long before the previous run started (late-recorded entries). */
  incrementalOverlapSeconds: z.number().int().nonnegative().default(600),
  /** Entries per list page (SendGrid's maximum is 500). */
  pageSize: z.number().int().positive().max(MAX_LIST_PAGE).default(MAX_LIST_PAGE),
  /** Record snapshots per emitted pull page. */
  recordsPerPage: z.number().int().positive().default(1000),
  /**
   * Changes per push() (addresses per bulk call are capped at 1000 regardless). Default: every
   * scope (email:* and each mapped purpose) of 1000 addresses, times PUSH_CALLS, so a backlog
   * fills whole bulk calls.
   */
  batchSize: z.number().int().positive().optional(),
  /** Request timeout. */
  timeoutMs: z.number().int().positive().default(30_000),
  /** Requests in flight at once inside one push (per-address DELETEs). */
  concurrency: z.number().int().positive().default(4),
  /**
   * When X-RateLimit-Remaining hits 0, calls to that endpoint wait for X-RateLimit-Reset. A wait
   * longer than this is not slept: the call fails as retryable with the wait as retry-after.
   */
  maxRateLimitWaitMs: z.number().int().nonnegative().default(60_000),
  /** Attempts of a read (GET) during pull / check before the pull fails. */
  readAttempts: z.number().int().positive().default(4),
});
export type SendGridSettings = z.output<typeof sendgridSettings>;

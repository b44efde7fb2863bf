import { z } from 'zod';
import { secret } from '../../src/config/secret.js';
import { Purpose } from '../../src/model/types.js';

/** "0123...cdef-us14": the data centre is the suffix after the last dash. */
const API_KEY = /^[A-Za-z0-9]+-[a-z]{2,}\d+$/;

/** One audience (list) consentd keeps consistent. */
export const mailchimpList = z.strictObject({
  id: z.string().min(1),
  /**
   * Native id -> canonical purpose. A native id is a GDPR marketing_permission_id or an interest
   * (group) id of this list; which one it is, is learned from the list's members (see check()).
   */
  purposes: z.record(z.string().min(1), Purpose).default({}),
});

/**
 * Settings of a `kind: mailchimp` connector (strict: unknown keys are errors).
 * Not offered: `batchThreshold` (/batches). Bulk `POST /lists/{id}` takes 500 members per call,
 * answers synchronously with per-member errors and one push() carries at most 500 changes, so
 * /batches (asynchronous, polled, results as a tar.gz) would only add latency.
 */
export const mailchimpSettings = z
  .strictObject({
    /** `<key>-<dc>`; sent as the HTTP Basic password. */
    apiKey: secret(z.string().min(1)),
    /** Default https://<dc>.api.mailchimp.com/3.0 (set it for the sandbox). */
    baseUrl: z.url().optional(),
    lists: z.array(mailchimpList).min(1),
    /**
     * What to do when a grant of (email, *) must be pushed to a member Mailchimp will not set to
     * subscribed (unsubscribed, cleaned, transactional): `never` = report the change failed;
     * `pending` = set the member pending, which sends a double opt-in confirmation email.
     */
    resubscribe: z.enum(['never', 'pending']).default('never'),
    /** Secret token in the webhook URL (`?token=` or the last path segment). No token, no webhook. */
    webhookToken: secret(z.string().min(16)).optional(),
    /**
     * Push denials and suppressions of subjects Mailchimp does not hold (acceptsUnknownAddresses):
     * each becomes an `unsubscribed` contact in every configured list, so a later import or
     * signup form cannot add the address as subscribed. Off by default: Mailchimp counts
     * unsubscribed contacts in the audience (and, on most plans, in billing) [unverified], and
     * it copies addresses of people who never were in Mailchimp into it.
     */
    suppressUnknownAddresses: z.boolean().default(false),
    /** Simultaneous requests per API key; Mailchimp answers 429 beyond 10. */
    maxConnections: z.number().int().min(1).max(10).default(10),
    /** Members per pull page (Mailchimp's maximum is 1000). */
    pageSize: z.number().int().min(1).max(1000).default(1000),
    /** Per-request timeout (Mailchimp's own is 120 s). */
    timeoutMs: z.number().int().positive().default(120_000),
  })
  .superRefine((s, ctx) => {
    if (s.baseUrl === undefined && !API_KEY.test(s.apiKey)) {
      ctx.addIssue({ code: 'custom', path: ['apiKey'], message: 'apiKey must end in -<dc> (e.g. -us14) unless baseUrl is set' });
    }
    const ids = new Set<string>();
    for (const [i, l] of s.lists.entries()) {
      if (ids.has(l.id)) ctx.addIssue({ code: 'custom', path: ['lists', i, 'id'], message: `list ${l.id} is listed twice` });
      ids.add(l.id);
    }
  });
export type MailchimpSettings = z.output<typeof mailchimpSettings>;

/** The data centre of a key ("abc-us14" -> "us14"). */
export function dcOf(apiKey: string): string {
  const i = apiKey.lastIndexOf('-');
  return i >= 0 ? apiKey.slice(i + 1) : 'us1';
}

export function baseUrlOf(s: Pick<MailchimpSettings, 'apiKey' | 'baseUrl'>): string {
  return (s.baseUrl ?? `https://${dcOf(s.apiKey)}.api.mailchimp.com/3.0`).replace(/\/+$/, '');
}

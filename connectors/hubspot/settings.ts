import { z } from 'zod';
import { secret } from '../../src/config/secret.js';
import { Purpose } from '../../src/model/types.js';

/**
 * Settings of a `kind: hubspot` connector (strict: unknown keys are errors).
 *
 * `subscriptions` follows the `purposes` convention of every connector kind (native -> canonical):
 * HubSpot subscription type id -> canonical purpose id. Unmapped subscription types are ignored
 * on pull and never written. "Unsubscribed from all email" (hs_email_optout) is always (email, *).
 */
export const hubspotSettings = z.strictObject({
  /** Private app access token (scopes: crm.objects.contacts.read/write, communication_preferences.*). */
  accessToken: secret(z.string().min(1)),
  /** API base URL; the sandbox's URL in tests and rehearsals. */
  basePath: z.url().default('https://api.hubapi.com'),
  /** The app's client secret: signs webhooks (X-HubSpot-Signature-v3). Without it webhooks are refused. */
  appSecret: secret(z.string().min(1)).optional(),
  /**
   * The public URL HubSpot posts webhooks to (it is part of the v3 signature). Behind a proxy the
   * URL the daemon sees differs from what HubSpot signed; without this, the request URL is used.
   */
  webhookUrl: z.url().optional(),
  /**
   * The id of the app consentd writes through. Webhook events whose source is this app are the
   * echoes of our own pushes: they are dropped before any API call is spent resolving them.
   */
  ownAppId: z.union([z.number().int(), z.string().regex(/^\d+$/)]).optional(),
  subscriptions: z.record(z.string().regex(/^\d+$/, 'subscription type ids are numeric'), Purpose).default({}),
  /** Communication preferences API: v4 (batch, can resubscribe), v3 (per address, cannot), auto (try v4 once, fall back to v3 on 404). */
  commPrefs: z.enum(['v4', 'v3', 'auto']).default('auto'),
  limits: z
    .strictObject({
      /** Requests per rolling 10 s window (100 Free/Starter, 190 Professional/Enterprise). */
      tenSecondly: z.number().int().positive().default(100),
      daily: z.number().int().positive().default(250_000),
      searchPerSecond: z.number().int().positive().default(5),
      /** Requests in flight at once. */
      concurrency: z.number().int().positive().max(16).default(4),
    })
    .prefault({}),
  /** A call that has not answered after this long counts as a timeout (retry). */
  timeoutMs: z.number().int().positive().default(30_000),
});
export type HubSpotSettings = z.output<typeof hubspotSettings>;

import { z } from 'zod';
import { secret } from '../../src/config/secret.js';
import { Purpose } from '../../src/model/types.js';

const ORG_ID = /^00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?$/;

/**
 * Settings of a `kind: salesforce` connector (strict: unknown keys are errors).
 *
 * `purposes` follows the convention of every connector kind: native name -> canonical id. Here
 * the native name is a DataUsePurpose.Name (matched case-insensitively after trimming); its
 * ContactPointTypeConsent records (ContactPointType Email) carry the per-purpose consent.
 */
export const salesforceSettings = z.strictObject({
  /** Login server: https://login.salesforce.com, https://test.salesforce.com or a My Domain URL. */
  loginUrl: z.url().default('https://login.salesforce.com'),
  /** The org's My Domain URL; client_credentials need it (used as the token endpoint host). */
  instanceUrl: z.url().optional(),
  /** REST API version ("59.0"); sObject Collections need 42.0 or later. */
  apiVersion: z
    .string()
    .regex(/^\d{2,3}\.0$/, 'apiVersion looks like "59.0"')
    .refine((v) => Number(v) >= 42, 'apiVersion must be 42.0 or later (sObject Collections)')
    .default('59.0'),
  auth: z.discriminatedUnion('flow', [
    z.strictObject({
      flow: z.literal('password'),
      username: z.string().min(1),
      /** Password with the security token appended when the org requires one. */
      password: secret(z.string().min(1)),
      /** With clientId and clientSecret: OAuth 2.0 username-password flow; without: SOAP login(). */
      clientId: z.string().min(1).optional(),
      clientSecret: secret(z.string().min(1)).optional(),
    }),
    z.strictObject({
      flow: z.literal('client_credentials'),
      clientId: z.string().min(1),
      clientSecret: secret(z.string().min(1)),
    }),
  ]),
  /** Person objects to read and correct. */
  objects: z.array(z.enum(['Contact', 'Lead'])).min(1).default(['Contact', 'Lead']),
  /** Individual + ContactPointTypeConsent: on, off, or auto (detected from the org's sObject list). */
  privacy: z.enum(['auto', 'on', 'off']).default('auto'),
  /** HasOptedOutOfFax expresses (post, *) when "post"; ignored when "none". */
  faxChannel: z.enum(['post', 'none']).default('none'),
  /** DataUsePurpose Name -> canonical purpose id. */
  purposes: z.record(z.string(), Purpose).default({}),
  /** Part of the daily API allowance left untouched: a number of calls or a percentage ("10%"). */
  apiReserve: z
    .union([z.number().int().nonnegative(), z.string().regex(/^\d{1,2}(?:\.\d+)?%$/, 'a percentage such as "10%"')])
    .default('10%'),
  nearRealTime: z
    .discriminatedUnion('mode', [
      z.strictObject({ mode: z.literal('outbound_messages'), organizationId: z.string().regex(ORG_ID, 'an organization id (00D..., 15 or 18 characters)') }),
      z.strictObject({ mode: z.literal('none') }),
    ])
    .default({ mode: 'none' }),
  /** Converted Leads are skipped by default: the Contact they became carries the person. */
  convertedLeads: z.enum(['skip', 'include']).default('skip'),
  /** Per-request timeout (jsforce's own default is 30 minutes). */
  timeoutMs: z.number().int().positive().default(60_000),
  /** jsforce retries of idempotent requests (GET, DELETE) on 5xx / network errors. */
  requestRetries: z.number().int().min(0).max(5).default(2),
  /** Records per SOQL batch = per pull page (Salesforce serves 200..2000). */
  pageSize: z.number().int().min(200).max(2000).default(2000),
});
export type SalesforceSettings = z.output<typeof salesforceSettings>;
export type SalesforceAuth = SalesforceSettings['auth'];

/**
 * SendGrid (v3 API through axios): global unsubscribes, unsubscribe (ASM) groups and the
 * bounce / block / spam report / invalid email lists, plus the Signed Event Webhook.
 *
 * The record IS the address: recordId = the normalized email, and SendGrid accepts bare
 * addresses, so the planner sends denials and suppressions for every denied subject
 * (capabilities.acceptsUnknownAddresses). Mapping: mapping.ts; pull and its memory bound:
 * pull.ts; push semantics (global unsubscribes never lifted, suppress = global unsubscribe,
 * erase = clear the lists but keep a global unsubscribe): push.ts; webhook window: settings.ts.
 */
import { defineConnector } from '../../src/connectors/contract.js';
import type { CheckResult, Connector, ConnectorCapabilities, ConnectorContext, PullPage, PushResult } from '../../src/connectors/contract.js';
import type { Change } from '../../src/model/types.js';
import { ALL_PURPOSES } from '../../src/model/types.js';
import { classifyError } from '../../src/engine/retry.js';
import { listGroups } from './groups.js';
import { SendGridHttp, type SendGridHttpOptions } from './http.js';
import { PurposeMap } from './mapping.js';
import { pullSendGrid } from './pull.js';
import { pushSendGrid } from './push.js';
import { MAX_RECIPIENTS_PER_CALL, PUSH_CALLS, sendgridSettings, type SendGridSettings } from './settings.js';
import { createSendGridWebhook } from './webhook.js';

export { sendgridSettings, SENDGRID_BASE_URL, SENDGRID_EU_BASE_URL } from './settings.js';
export type { SendGridSettings } from './settings.js';
export { GLOBAL_NEVER_LIFTED } from './push.js';

export const sendgridConnector = defineConnector({
  kind: 'sendgrid',
  configSchema: sendgridSettings,
  create: (settings, ctx) => createSendGridConnector(settings, ctx),
});

/** API key scopes each function needs (GET /scopes). */
export const REQUIRED_SCOPES: Readonly<Record<string, readonly string[]>> = {
  pull: ['asm.groups.read', 'asm.groups.suppressions.read', 'suppression.unsubscribes.read', 'suppression.bounces.read', 'suppression.blocks.read', 'suppression.spam_reports.read', 'suppression.invalid_emails.read'],
  push: ['asm.suppressions.global.create', 'asm.suppressions.global.read', 'asm.groups.suppressions.create', 'asm.groups.suppressions.delete'],
  erase: ['suppression.bounces.delete', 'suppression.blocks.delete', 'suppression.spam_reports.delete', 'suppression.invalid_emails.delete'],
};

export interface SendGridConnectorOptions extends SendGridHttpOptions {
  now?: () => number;
}

export function createSendGridConnector(settings: SendGridSettings, ctx: ConnectorContext, opts: SendGridConnectorOptions = {}): Connector {
  const now = opts.now ?? ((): number => Date.now());
  const http = new SendGridHttp(settings, ctx, { ...opts, now });
  const purposes = new PurposeMap(settings.purposes);

  const capabilities: ConnectorCapabilities = {
    consent: [ALL_PURPOSES, ...purposes.purposes()].map((purpose) => ({ channel: 'email' as const, purpose })),
    suppression: ['email'],
    // Only group suppressions can be lifted; a grant of (email, *) fails with a reason (push.ts).
    pushGrants: true,
    erase: true,
    acceptsUnknownAddresses: true,
    eraseKeepsSuppression: true,
    keepsChannelDenial: true,
    channelDenialCoversPurposes: true,
  };

  const connector: Connector = {
    id: ctx.id,
    kind: 'sendgrid',
    // SendGrid's per-endpoint limits are unpublished (600/min is typical); X-RateLimit headers are honoured in http.ts.
    limits: { batchSize: settings.batchSize ?? MAX_RECIPIENTS_PER_CALL * capabilities.consent.length * PUSH_CALLS, requestsPerInterval: 10, intervalMs: 1_000, concurrency: 1 },
    capabilities,
    pull(cursor: string | null): AsyncIterable<PullPage> {
      return pullSendGrid({ http, settings, ctx, purposes, now }, cursor);
    },
    push(changes: Change[]): Promise<PushResult[]> {
      return pushSendGrid({ http, purposes, concurrency: settings.concurrency, now }, changes);
    },
    check: () => check(http, settings, ctx, purposes),
  };
  if (settings.webhookPublicKey !== undefined) {
    return { ...connector, webhook: createSendGridWebhook({ ctx, purposes, publicKey: settings.webhookPublicKey, maxAgeSeconds: settings.webhookMaxAgeSeconds, now }) };
  }
  return connector;
}

async function check(http: SendGridHttp, settings: SendGridSettings, ctx: ConnectorContext, purposes: PurposeMap): Promise<CheckResult> {
  const details: string[] = [];
  let ok = true;
  try {
    const res = await http.read<{ scopes?: unknown }>({ method: 'GET', path: '/scopes', endpoint: 'GET /scopes' });
    const scopes = new Set(Array.isArray(res.data.scopes) ? res.data.scopes.filter((s): s is string => typeof s === 'string') : []);
    details.push(`API key accepted by ${settings.baseUrl} (${scopes.size} scopes)`);
    for (const [what, needed] of Object.entries(REQUIRED_SCOPES)) {
      const missing = needed.filter((s) => !scopes.has(s));
      if (missing.length > 0) {
        ok = false;
        details.push(`missing scopes for ${what}: ${missing.join(', ')}`);
      }
    }
  } catch (err) {
    const v = classifyError(err);
    return { ok: false, details: [`SendGrid refused GET /scopes: ${v.reason}`, 'check apiKey (and baseUrl: EU regional subusers use https://api.eu.sendgrid.com/v3)'] };
  }
  try {
    const groups = await listGroups(http);
    const ids = new Set(groups.map((g) => g.id));
    details.push(`${groups.length} unsubscribe groups: ${groups.map((g) => `${g.id} ${g.name}${purposes.purposeOf(g.id) ? ` -> ${purposes.purposeOf(g.id)}` : ''}`).join(', ') || '(none)'}`);
    for (const id of purposes.groupIds()) {
      if (!ids.has(id)) {
        ok = false;
        // SendGrid adds suppressions for a deleted / unknown group to the GLOBAL list: never push to one.
        details.push(`configured group ${id} (purpose ${purposes.purposeOf(id) ?? '?'}) does not exist in SendGrid`);
      }
    }
  } catch (err) {
    ok = false;
    details.push(`GET /asm/groups failed: ${classifyError(err).reason}`);
  }
  const undeclared = purposes.purposes().filter((p) => !ctx.purposes.includes(p));
  if (undeclared.length > 0) details.push(`purposes not declared in config: ${undeclared.join(', ')}`);
  details.push(settings.webhookPublicKey === undefined ? 'event webhook disabled (no webhookPublicKey)' : `event webhook verified with the configured public key, max age ${settings.webhookMaxAgeSeconds} s`);
  return { ok, details };
}

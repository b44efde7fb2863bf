import { defineConnector } from '../../src/connectors/contract.js';
import type { CheckResult, Connector, ConnectorCapabilities, ConnectorContext, PullPage, PushResult } from '../../src/connectors/contract.js';
import { ALL_PURPOSES, type Change } from '../../src/model/types.js';
import { BATCH_MAX, classifyHubSpotError, HubSpotApi, type HubSpotApiOptions } from './client.js';
import { CommPrefs } from './commprefs.js';
import { mappedPurposes } from './mapping.js';
import { decodeCursor, fullPull, incrementalPull } from './pull.js';
import { pushChanges } from './push.js';
import { hubspotSettings, type HubSpotSettings } from './settings.js';
import { hubspotWebhook } from './webhook.js';

export { hubspotSettings } from './settings.js';
export type { HubSpotSettings } from './settings.js';
export type { HubSpotWebhookTranslation } from './webhook.js';

/**
 * HubSpot contacts through @hubspot/api-client 13.5: consent = "unsubscribed from all email"
 * (email, *) and subscription types mapped to purposes (settings.subscriptions); bounce flags
 * are read as suppressions (HubSpot's bounce state is not writable); erasure = GDPR delete.
 */
export const hubspotConnector = defineConnector({
  kind: 'hubspot',
  configSchema: hubspotSettings,
  create: (settings, ctx) => createHubSpotConnector(settings, ctx),
});

/** Full batch calls (per API) one push may fill: the outbox hands push() that much work at once. */
export const PUSH_CALLS = 10;

export interface HubSpotConnectorOptions {
  /** Read retry tuning (tests). */
  readAttempts?: number;
  maxReadWaitMs?: number;
  now?: () => number;
}

export function createHubSpotConnector(settings: HubSpotSettings, ctx: ConnectorContext, opts: HubSpotConnectorOptions = {}): Connector {
  const apiOpts: HubSpotApiOptions = { settings, ctx };
  if (opts.readAttempts !== undefined) apiOpts.readAttempts = opts.readAttempts;
  if (opts.maxReadWaitMs !== undefined) apiOpts.maxReadWaitMs = opts.maxReadWaitMs;
  const api = new HubSpotApi(apiOpts);
  const prefs = new CommPrefs(api, settings.commPrefs);
  const subscriptions: ReadonlyMap<string, string> = new Map(Object.entries(settings.subscriptions));
  const purposes = mappedPurposes(subscriptions);
  for (const p of purposes) {
    if (!ctx.purposes.includes(p)) ctx.logger.warn({ connector: ctx.id, purpose: p }, 'hubspot subscription mapped to a purpose not declared in config');
  }
  let allIds: Promise<string[]> | null = null;
  const allSubscriptionIds = (): Promise<string[]> => {
    allIds ??= api.v3Definitions().then(
      (d) => d.map((x) => String(x.id)),
      (e: unknown) => {
        allIds = null;
        throw e;
      },
    );
    return allIds;
  };
  const deps = { api, prefs, connectorId: ctx.id, subscriptions, ...(opts.now ? { now: opts.now } : {}) };
  const consent = [ALL_PURPOSES, ...purposes].map((purpose) => ({ channel: 'email' as const, purpose }));
  // Changes per push: every scope of BATCH_MAX addresses (one full batch call per API), times
  // PUSH_CALLS, so a backlog fills whole calls and a push's rounding costs little.
  const batchSize = BATCH_MAX * consent.length * PUSH_CALLS;

  return {
    id: ctx.id,
    kind: 'hubspot',
    limits: { batchSize, requestsPerInterval: settings.limits.tenSecondly, intervalMs: 10_000, concurrency: settings.limits.concurrency },
    // A getter: grants can be pushed only once v4 is known to be there (auto probes it on first use).
    get capabilities(): ConnectorCapabilities {
      return { consent, suppression: [], pushGrants: prefs.known === 'v4', erase: true, acceptsUnknownAddresses: false, channelDenialCoversPurposes: true };
    },
    pull(cursor: string | null): AsyncIterable<PullPage> {
      return cursor === null ? fullPull(deps) : incrementalPull(deps, decodeCursor(cursor));
    },
    push(changes: Change[]): Promise<PushResult[]> {
      return pushChanges({ api, prefs, subscriptions, allSubscriptionIds }, changes);
    },
    webhook: hubspotWebhook({ api, prefs, connectorId: ctx.id, subscriptions, appSecret: settings.appSecret, webhookUrl: settings.webhookUrl, ownAppId: settings.ownAppId === undefined ? undefined : String(settings.ownAppId) }),
    check: () => check(api, prefs, settings),
    close(): Promise<void> {
      api.close();
      return Promise.resolve();
    },
  };
}

async function check(api: HubSpotApi, prefs: CommPrefs, settings: HubSpotSettings): Promise<CheckResult> {
  const details: string[] = [];
  let ok = true;
  try {
    await api.call('GET /crm/v3/objects/contacts', () => api.sdk.crm.contacts.basicApi.getPage(1, undefined, ['email']));
    details.push('crm.objects.contacts.read: ok');
  } catch (e) {
    const f = classifyHubSpotError(e);
    details.push(`crm.objects.contacts.read: ${f.status === 401 ? 'access token rejected' : f.status === 403 ? 'scope missing' : 'failed'} (${f.reason})`);
    return { ok: false, details };
  }
  try {
    const mode = await prefs.resolve();
    details.push(
      mode === 'v4'
        ? `communication_preferences: v4 available${settings.commPrefs === 'v3' ? '' : ' (batch reads and writes, can resubscribe)'}`
        : settings.commPrefs === 'v3'
          ? 'communication_preferences: using v3 as configured (cannot resubscribe)'
          : 'communication_preferences: v4 not available, using v3 (cannot resubscribe)',
    );
  } catch (e) {
    ok = false;
    details.push(`communication_preferences: failed (${classifyHubSpotError(e).reason})`);
  }
  const mapped = Object.entries(settings.subscriptions);
  if (mapped.length > 0) {
    try {
      const defs = new Map((await api.v3Definitions()).map((d) => [String(d.id), d.name] as const));
      for (const [id, purpose] of mapped) {
        const name = defs.get(id);
        if (name === undefined) {
          ok = false;
          details.push(`subscription ${id} -> ${purpose}: no such subscription type in this account`);
        } else details.push(`subscription ${id} (${name}) -> ${purpose}: ok`);
      }
    } catch (e) {
      ok = false;
      details.push(`subscription definitions: failed (${classifyHubSpotError(e).reason})`);
    }
  } else details.push('no subscriptions mapped: only "unsubscribed from all email" (email, *) is synchronized');
  details.push(settings.appSecret ? `webhooks: signature v3 checked${settings.webhookUrl ? ` against ${settings.webhookUrl}` : ' against the request URL'}` : 'webhooks: no appSecret, deliveries will be refused');
  return { ok, details };
}

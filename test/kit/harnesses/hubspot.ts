/** The connector kit's harness for HubSpot: sandbox + connector through the real SDK. */
import { pino } from 'pino';
import type { ConnectorContext, WebhookRequest } from '../../../src/connectors/contract.js';
import { readBody, startHttpServer } from '../../../src/sandbox/http.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { createHubSpotConnector, hubspotSettings } from '../../../connectors/hubspot/index.js';
import { createHubSpotSandbox, signV3, type HubSpotSandbox, type HubSpotSandboxOptions } from '../../../connectors/hubspot/sandbox/index.js';
import { hubspotPeople } from '../../../connectors/hubspot/sandbox/people.js';
import type { KitHarness, KitState } from '../connector-kit.js';

export const SUBSCRIPTIONS = { '1001': 'newsletter', '1002': 'product_updates' } as const;

export function testCtx(id = 'hubspot'): ConnectorContext {
  return { id, purposes: ['newsletter', 'product_updates', 'events'], logger: pino({ level: 'silent' }), baseDir: '.' };
}

export function settingsFor(sb: HubSpotSandbox, extra: Record<string, unknown> = {}): ReturnType<typeof hubspotSettings.parse> {
  return hubspotSettings.parse({
    accessToken: sb.credentials.accessToken,
    appSecret: sb.credentials.appSecret,
    basePath: sb.url,
    subscriptions: SUBSCRIPTIONS,
    limits: { tenSecondly: 100_000, searchPerSecond: 1_000 },
    timeoutMs: 5_000,
    ...extra,
  });
}

export function readHubSpotState(sb: HubSpotSandbox, email: string): KitState {
  const contacts = sb.state.contactsByEmail(email);
  const wide = sb.state.wideStatus(email);
  const consent: KitState['consent'] = { 'email:*': wide.status === 'UNSUBSCRIBED' ? 'denied' : 'unknown' };
  for (const s of sb.state.statuses(email)) {
    const purpose = (SUBSCRIPTIONS as Record<string, string>)[s.subscriptionId];
    if (purpose) consent[`email:${purpose}`] = s.status === 'SUBSCRIBED' ? 'granted' : s.status === 'UNSUBSCRIBED' ? 'denied' : 'unknown';
  }
  const suppressed = contacts.some((c) => (c.properties['hs_email_hard_bounce_reason_enum'] ?? '') !== '' || c.properties['hs_email_bad_address'] === 'true');
  return { exists: contacts.length > 0, consent, suppressed: { email: suppressed } };
}

export async function hubspotHarness(opts: HubSpotSandboxOptions = {}): Promise<KitHarness & { sb: HubSpotSandbox }> {
  const sb = createHubSpotSandbox({ tenSecondlyLimit: 100_000, searchPerSecond: 1_000, webhookRetryDelaysMs: [50], ...opts });
  await sb.start();
  const connector = createHubSpotConnector(settingsFor(sb), testCtx(), { maxReadWaitMs: 50 });
  return {
    sb,
    connector,
    badCredentials: () => createHubSpotConnector(settingsFor(sb, { accessToken: 'pat-na1-wrong' }), testCtx(), { readAttempts: 1 }),
    platform: 'hubspot',
    people: (n: number): SeedPerson[] => [...hubspotPeople(n, { purposes: ['newsletter', 'product_updates'] })],
    pushBatch: { max: 100, callsPerBatch: 1 },
    maxPageRecords: 200,
    webhookHasTimestamp: true,
    webhookAuth: 'signed-body',
    pullGrantsAllScope: false,
    sandbox: {
      setFaults: (p) => sb.faults.set(p),
      resetFaults: () => sb.faults.set({ latencyMs: 0, errorRate: 0, rateLimitRate: 0, timeoutRate: 0, resetRate: 0, partialFailureRate: 0 }),
      calls: () => sb.calls.total,
      resetCalls: () => sb.calls.reset(),
      readState: (email) => Promise.resolve(readHubSpotState(sb, email)),
      seed: (people) => {
        sb.reset();
        sb.seed(people);
        return Promise.resolve();
      },
      act: (action, email) => {
        if (action === 'optout') sb.actions.unsubscribe(email);
        return Promise.resolve();
      },
    },
    async captureWebhook(email: string): Promise<WebhookRequest> {
      let resolve: (r: WebhookRequest) => void = () => undefined;
      const got = new Promise<WebhookRequest>((r) => (resolve = r));
      let base = '';
      const listener = await startHttpServer(async (req, res) => {
        const rawBody = await readBody(req);
        res.writeHead(200).end();
        resolve({ method: req.method ?? 'POST', url: `${base}${req.url ?? '/'}`, headers: req.headers, rawBody, receivedAt: new Date() });
      });
      base = listener.url;
      sb.setWebhookUrl(`${base}/webhooks/hubspot`);
      try {
        sb.actions.unsubscribe(email);
        return await got;
      } finally {
        sb.setWebhookUrl(undefined);
        await sb.flushWebhooks();
        await listener.close();
      }
    },
    resignWebhook(req: WebhookRequest): WebhookRequest {
      const ts = String(Date.now());
      const sig = signV3(sb.credentials.appSecret, req.method, req.url, req.rawBody.toString('utf8'), ts);
      return { ...req, headers: { ...req.headers, 'x-hubspot-request-timestamp': ts, 'x-hubspot-signature-v3': sig } };
    },
    async close() {
      await connector.close?.();
      await sb.stop();
    },
  };
}

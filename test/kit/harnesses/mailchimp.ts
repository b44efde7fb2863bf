/**
 * The connector kit's harness for Mailchimp: sandbox + connector through axios.
 *
 * Platform specifics the harness declares to the kit:
 * - pullGrantsAllScope: a subscribed member is a statement about the whole channel: with
 *   timestamp_opt an explicit, dated opt-in (evidence: the opt-in IP), without it (an import or
 *   an admin add) an implicit one;
 * - webhookAuth 'url-token': Mailchimp signs nothing; the secret is the token in the webhook URL
 *   (?token=), so the forgery is the same delivery with another token; Mailchimp validates a
 *   new webhook URL with a GET, which yields no events; bodies are form-encoded;
 * - one member per distinct lowercased address (the subscriber hash), so duplicates collapse.
 */
import { pino } from 'pino';
import type { ConnectorContext, WebhookRequest } from '../../../src/connectors/contract.js';
import { NO_FAULTS } from '../../../src/sandbox/faults.js';
import { readBody, startHttpServer } from '../../../src/sandbox/http.js';
import { generatePeople } from '../../../src/sandbox/seed.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { createMailchimpConnector, mailchimpSettings, type MailchimpSettings } from '../../../connectors/mailchimp/index.js';
import { createMailchimpSandbox, type MailchimpSandbox } from '../../../connectors/mailchimp/sandbox/index.js';
import type { KitHarness, KitState } from '../connector-kit.js';

export const MC_LIST = 'a1b2c3d4e5';
export const MC_TOKEN = 'tok-kit-0123456789abcdef';
/** The default list's "Newsletter" marketing permission. */
const PURPOSES = { '7f3c9b2a1d': 'newsletter' } as const;

function ctx(): ConnectorContext {
  return { id: 'mailchimp', purposes: ['newsletter', 'product_updates', 'events'], logger: pino({ level: 'silent' }), baseDir: '.' };
}

export function readMailchimpState(sb: MailchimpSandbox, email: string): KitState {
  const m = sb.state.findByEmail(email, MC_LIST);
  const status = m?.status;
  const wide = status === 'unsubscribed' || status === 'cleaned' ? 'denied' : status === 'subscribed' ? 'granted' : 'unknown';
  return { exists: m !== undefined, consent: { 'email:*': wide }, suppressed: { email: status === 'unsubscribed' || status === 'cleaned' } };
}

export async function mailchimpHarness(): Promise<KitHarness & { sb: MailchimpSandbox }> {
  const sb = createMailchimpSandbox({ webhookRetryDelaysMs: [20], faultsSeed: 7 });
  await sb.start();
  const settings = (apiKey: string): MailchimpSettings =>
    mailchimpSettings.parse({ apiKey, baseUrl: sb.url, lists: [{ id: MC_LIST, purposes: PURPOSES }], webhookToken: MC_TOKEN, pageSize: 100, timeoutMs: 5_000 });
  const connector = createMailchimpConnector(settings(sb.credentials.apiKey), ctx(), { http: { backoff: { baseMs: 5, maxMs: 20 } } });
  const control = async (action: string, body: unknown): Promise<void> => {
    const res = await fetch(`${sb.rootUrl}/__sandbox/actions/${action}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    if (!res.ok) throw new Error(`sandbox ${action}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  return {
    sb,
    connector,
    badCredentials: () => createMailchimpConnector(settings('0000-us14'), ctx(), { http: { getAttempts: 1 } }),
    platform: 'mailchimp',
    people: (n: number): SeedPerson[] => [...generatePeople(n, 3, { rates: { presence: { salesforce: 0, hubspot: 0, mailchimp: 1, sendgrid: 0 } } })],
    // Mailchimp keys members by md5 of the lowercased address: duplicates and case variants collapse.
    expectedRecords: (people) => people.reduce((n, p) => n + new Set((p.presence.mailchimp?.emails ?? []).map((e) => e.toLowerCase())).size, 0),
    pushBatch: { max: 500, callsPerBatch: 1 },
    maxPageRecords: 100,
    pullGrantsAllScope: true,
    webhookAuth: 'url-token',
    webhookHasTimestamp: false,
    forgeWebhook(req: WebhookRequest): WebhookRequest {
      const u = new URL(req.url);
      if (u.searchParams.get('token') !== MC_TOKEN) throw new Error(`the delivery URL carries no kit token: ${req.url}`);
      u.searchParams.set('token', `${MC_TOKEN.slice(0, -1)}0`);
      return { ...req, url: u.toString() };
    },
    malformedWebhookBodies: (body) => [
      '',
      'type=nonsense&fired_at=2025-01-01+00%3A00%3A00',
      body.replace(/fired_at=[^&]*/, 'fired_at=yesterday'),
      body.replace(/data%5Blist_id%5D=[^&]*|data\[list_id\]=[^&]*/, ''),
      body.replace(/(data%5Bemail%5D|data\[email\])=[^&]*/, '$1=not-an-address'),
    ],
    sandbox: {
      setFaults: (p) => sb.faults.set(p),
      resetFaults: () => sb.faults.set(NO_FAULTS),
      calls: () => sb.calls.total,
      resetCalls: () => sb.calls.reset(),
      readState: (email) => Promise.resolve(readMailchimpState(sb, email)),
      seed: (people) => {
        sb.reset();
        sb.seed(people);
        return Promise.resolve();
      },
      act: async (action, email) => {
        if (action === 'optout') await control('unsubscribe', { email });
      },
    },
    async captureWebhook(email: string): Promise<WebhookRequest> {
      let resolve: (r: WebhookRequest) => void = () => undefined;
      const got = new Promise<WebhookRequest>((r) => (resolve = r));
      let base = '';
      const listener = await startHttpServer(async (req, res) => {
        const rawBody = await readBody(req);
        res.writeHead(200).end();
        // The GET is Mailchimp's URL validation; the POST is the delivery.
        if (req.method === 'POST') resolve({ method: 'POST', url: `${base}${req.url ?? '/'}`, headers: req.headers, rawBody, receivedAt: new Date() });
      });
      base = listener.url;
      const url = `${base}/webhooks/mailchimp?token=${MC_TOKEN}`;
      try {
        await control('create-webhook', { url });
        await control('unsubscribe', { email });
        return await got;
      } finally {
        const list = sb.state.lists.get(MC_LIST);
        if (list) list.webhooks = list.webhooks.filter((w) => w.url !== url);
        await sb.webhooks.idle();
        await listener.close();
      }
    },
    async close() {
      await connector.close?.();
      await sb.stop();
    },
  };
}

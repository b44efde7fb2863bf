/**
 * The shared connector kit, run for SendGrid against its sandbox.
 *
 * Harness notes (platform specifics):
 * - SendGrid holds suppressions, not contacts: a "record" is an address on some suppression
 *   list, so every seeded person here has at least one group denial (expectedRecords = people).
 * - `exists` (kit block 8) means "SendGrid holds anything about the address besides a global
 *   unsubscribe": an erasure deliberately keeps (ensures) the global unsubscribe, the
 *   anonymize-and-suppress remainder of policy rule 6 (see connectors/sendgrid/push.ts).
 * - The kit's partialFailureRate makes the sandbox refuse a bulk call for an address (400),
 *   as SendGrid does; the connector bisects to isolate it.
 * - Block 6 asks for more than one retry round, but SendGrid carries all 120 denials in ONE call,
 *   so whether that call draws a fault depends on the sandbox's seeded fault sequence: faultsSeed 1
 *   makes it fail first (deterministic; other seeds may let it through and fail that assertion).
 */
import { pino } from 'pino';
import { createSendGridConnector, sendgridSettings } from '../../connectors/sendgrid/index.js';
import { createSendGridSandbox, SIGNATURE_HEADER, TIMESTAMP_HEADER, type SendGridSandbox } from '../../connectors/sendgrid/sandbox/index.js';
import type { ConnectorContext, WebhookRequest } from '../../src/connectors/contract.js';
import { NO_FAULTS } from '../../src/sandbox/faults.js';
import { readBody, startHttpServer } from '../../src/sandbox/http.js';
import type { SeedPerson } from '../../src/sandbox/seed-types.js';
import { runConnectorKit, type KitHarness, type KitState } from '../kit/connector-kit.js';

const PURPOSES = { '101': 'newsletter', '102': 'product_updates', '103': 'events' } as const;
const BASE = Date.parse('2025-01-01T00:00:00.000Z');

function ctx(): ConnectorContext {
  return { id: 'sendgrid', purposes: ['newsletter', 'product_updates', 'events'], logger: pino({ level: 'silent' }), baseDir: '.' };
}

export function sendgridPeople(count: number): SeedPerson[] {
  const names = ['newsletter', 'product_updates', 'events'];
  return Array.from({ length: count }, (_, i) => {
    const email = `sg${String(i).padStart(4, '0')}@example.com`;
    const updatedAt = new Date(BASE + i * 60_000).toISOString();
    const optedOut = i % 4 === 0;
    const purposes: Record<string, 'granted' | 'denied' | 'unknown'> = {};
    for (const [j, p] of names.entries()) purposes[p] = i % 3 === j ? 'denied' : 'unknown';
    return {
      index: i,
      email,
      firstName: 'Sg',
      lastName: String(i),
      phone: null,
      presence: {
        sendgrid: {
          emails: i % 40 === 5 ? [email, email.toUpperCase()] : [email],
          optedOut,
          optedOutAt: optedOut ? updatedAt : null,
          subscribedAt: null,
          purposes,
          hardBounced: i % 7 === 0,
          complained: i % 11 === 0,
          erasureRequested: false,
          updatedAt,
        },
      },
    };
  });
}

export function readSendGridState(sb: SendGridSandbox, email: string): KitState {
  const s = sb.state;
  const global = s.global.has(email);
  const groups = [...s.groups.values()].filter((g) => g.suppressions.has(email)).map((g) => g.id);
  const consent: KitState['consent'] = { 'email:*': global ? 'denied' : 'granted' };
  for (const [id, purpose] of Object.entries(PURPOSES)) consent[`email:${purpose}`] = global || groups.includes(Number(id)) ? 'denied' : 'granted';
  const listed = s.lists.bounces.has(email) || s.lists.blocks.has(email) || s.lists.spam_reports.has(email) || s.lists.invalid_emails.has(email);
  return { exists: listed || groups.length > 0, consent, suppressed: { email: global || listed } };
}

async function sendgridHarness(): Promise<KitHarness> {
  const sb = createSendGridSandbox({ rateLimit: { limit: 10_000, windowMs: 1_000 }, webhookRetryDelaysMs: [50], faultsSeed: 1 });
  await sb.start();
  const settings = (apiKey: string): ReturnType<typeof sendgridSettings.parse> =>
    sendgridSettings.parse({
      apiKey,
      baseUrl: sb.url,
      purposes: PURPOSES,
      webhookPublicKey: sb.credentials.publicKey,
      pageSize: 100,
      recordsPerPage: 100,
      timeoutMs: 5_000,
      maxRateLimitWaitMs: 3_000,
    });
  const connector = createSendGridConnector(settings(sb.credentials.apiKey), ctx());
  const control = `${sb.rootUrl}/__sandbox`;
  return {
    connector,
    badCredentials: () => createSendGridConnector(settings('SG.wrong'), ctx()),
    platform: 'sendgrid',
    people: sendgridPeople,
    expectedRecords: (people) => people.length,
    pushBatch: { max: 1000, callsPerBatch: 1 },
    maxPageRecords: 100,
    webhookHasTimestamp: true,
    sandbox: {
      setFaults: (p) => sb.faults.set(p),
      resetFaults: () => sb.faults.set(NO_FAULTS),
      calls: () => sb.calls.total,
      resetCalls: () => sb.calls.reset(),
      readState: (email) => Promise.resolve(readSendGridState(sb, email)),
      seed: (people) => {
        sb.reset();
        sb.seed(people);
        return Promise.resolve();
      },
      async act(action, email) {
        if (action !== 'optout') return;
        const res = await fetch(`${control}/actions/unsubscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
        await res.arrayBuffer();
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
      sb.events.opts.url = `${base}/webhooks/sendgrid`;
      try {
        sb.state.global.delete(email);
        const res = await fetch(`${control}/actions/unsubscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
        await res.arrayBuffer();
        return await got;
      } finally {
        sb.events.opts.url = undefined;
        await sb.events.idle();
        await listener.close();
      }
    },
    resignWebhook(req: WebhookRequest): WebhookRequest {
      const ts = String(Math.floor(Date.now() / 1000));
      const sig = sb.events.signature(ts, req.rawBody.toString('utf8'));
      return { ...req, headers: { ...req.headers, [SIGNATURE_HEADER.toLowerCase()]: sig, [TIMESTAMP_HEADER.toLowerCase()]: ts } };
    },
    async close() {
      await sb.stop();
    },
  };
}

runConnectorKit({ name: 'sendgrid', setup: sendgridHarness });

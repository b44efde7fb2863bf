/** Shared setup of the Salesforce connector tests: sandbox people, connector factory, page collection. */
import { pino } from 'pino';
import type { Connector, ConnectorContext, PullPage, WebhookRequest } from '../../src/connectors/contract.js';
import { readBody, startHttpServer } from '../../src/sandbox/http.js';
import { changeKey, type Change, type ChangeOp, type Channel } from '../../src/model/types.js';
import type { SeedPerson, SeedPresence } from '../../src/sandbox/seed-types.js';
import { createSalesforceConnector, outboundAckResponse, salesforceSettings } from '../../connectors/salesforce/index.js';
import type { SalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';

export const VERSION = '59.0';
export const API = `/services/data/v${VERSION}`;

export function presence(emails: string[], extra: Partial<SeedPresence> = {}): SeedPresence {
  return {
    emails,
    optedOut: false,
    optedOutAt: null,
    subscribedAt: null,
    purposes: {},
    hardBounced: false,
    complained: false,
    erasureRequested: false,
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...extra,
  };
}

/** A person; index % 5 === 4 becomes a Lead, index % 25 === 4 a converted Lead plus its Contact. */
export function person(index: number, email: string, extra: Partial<SeedPresence> = {}): SeedPerson {
  return { index, email, firstName: 'Pat', lastName: `Person${index}`, phone: null, presence: { salesforce: presence([email], extra) } };
}

export interface Made {
  connector: Connector;
  calls: string[];
}

export function makeConnector(sb: SalesforceSandbox, over: Record<string, unknown> = {}, now?: () => number): Made {
  const settings = salesforceSettings.parse({
    loginUrl: sb.url,
    auth: { flow: 'password', username: sb.credentials.username, password: sb.credentials.password },
    purposes: { newsletter: 'newsletter', events: 'events' },
    timeoutMs: 5_000,
    ...over,
  });
  const calls: string[] = [];
  const ctx: ConnectorContext = {
    id: 'sf',
    purposes: ['newsletter', 'events'],
    logger: pino({ level: 'silent' }),
    baseDir: '.',
    onApiCall: (endpoint, status) => calls.push(`${endpoint} ${status}`),
  };
  return { connector: createSalesforceConnector(settings, ctx, now ? { now } : {}), calls };
}

export async function collect(pages: AsyncIterable<PullPage>, max = Infinity): Promise<PullPage[]> {
  const out: PullPage[] = [];
  for await (const p of pages) {
    out.push(p);
    if (out.length >= max) break;
  }
  return out;
}

export function change(recordId: string, subject: string, op: ChangeOp, channel: Channel, purpose: string, target: 'granted' | 'denied' | null, meta: Record<string, unknown> = {}): Change {
  const body = { connectorId: 'sf', recordId, subject, op, channel, purpose, target, rule: null, decidedBy: 'obs-1', meta };
  return { key: changeKey(body), ...body };
}

export function callsTo(sb: SalesforceSandbox, key: string): number {
  return sb.calls.snapshot()[key] ?? 0;
}

/**
 * Plays `act` with a local listener as the org's Outbound Message endpoint (answering the SOAP
 * Ack) and returns the first delivery as the daemon would hand it to verify().
 */
export async function captureOutbound(sb: SalesforceSandbox, act: () => void): Promise<WebhookRequest> {
  let resolve: (r: WebhookRequest) => void = () => undefined;
  const got = new Promise<WebhookRequest>((r) => (resolve = r));
  let base = '';
  const listener = await startHttpServer(async (req, res) => {
    const rawBody = await readBody(req);
    const ack = outboundAckResponse();
    res.writeHead(ack.status, { 'content-type': ack.contentType }).end(ack.body);
    resolve({ method: req.method ?? 'POST', url: `${base}${req.url ?? '/'}`, headers: req.headers, rawBody, receivedAt: new Date() });
  });
  base = listener.url;
  sb.setOutboundMessageUrl(`${base}/webhooks/sf`);
  try {
    act();
    return await got;
  } finally {
    sb.setOutboundMessageUrl(null);
    await sb.webhooks.idle();
    await listener.close();
  }
}

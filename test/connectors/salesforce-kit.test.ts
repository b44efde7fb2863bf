/**
 * The shared connector kit (test/kit/connector-kit.ts) run for Salesforce, with its harness.
 *
 * Block (7) runs in the kit's 'org-id' mode: Outbound Messages carry no signature; the
 * OrganizationId in the SOAP body must be the configured org's. The kit checks that a real
 * delivery is accepted and replays give the same ids, that the same message naming another org
 * is refused 401 and that malformed XML is refused 400. (Content type, method and Individual
 * notifications are in salesforce-outbound.test.ts.)
 * Block (2): Salesforce states no (email, *) grant (HasOptedOutOfEmail false is not consent).
 */
import { pino } from 'pino';
import { normalizeEmail } from '../../src/model/email.js';
import type { KitHarness, KitState } from '../kit/connector-kit.js';
import { runConnectorKit } from '../kit/connector-kit.js';
import { generatePeople } from '../../src/sandbox/seed.js';
import type { SeedPerson } from '../../src/sandbox/seed-types.js';
import { createSalesforceConnector, salesforceSettings } from '../../connectors/salesforce/index.js';
import { createSalesforceSandbox, type SalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { captureOutbound } from './salesforce-helpers.js';

const PURPOSES = ['newsletter', 'product_updates', 'events'] as const;
/** Another org's id, for forged Outbound Messages. */
const OTHER_ORG = '00D000000000001AAA';

function readState(sb: SalesforceSandbox, email: string): KitState {
  const recs = [...sb.state.contactsByEmail(email), ...sb.state.leadsByEmail(email)];
  return {
    exists: recs.length > 0,
    consent: { 'email:*': recs.some((r) => r['HasOptedOutOfEmail'] === true) ? 'denied' : 'unknown' },
    suppressed: { email: recs.some((r) => r['EmailBouncedReason'] !== null || r['EmailBouncedDate'] !== null) },
  };
}

async function salesforceHarness(): Promise<KitHarness> {
  const sb = createSalesforceSandbox({ webhookRetryDelaysMs: [50] });
  await sb.start();
  const ensurePurposes = (): void => {
    for (const p of PURPOSES) sb.state.raw.purpose(p);
  };
  ensurePurposes();
  const make = (password: string): ReturnType<typeof createSalesforceConnector> =>
    createSalesforceConnector(
      salesforceSettings.parse({
        loginUrl: sb.url,
        auth: { flow: 'password', username: sb.credentials.username, password },
        purposes: Object.fromEntries(PURPOSES.map((p) => [p, p])),
        pageSize: 200,
        timeoutMs: 5_000,
        requestRetries: 1,
        nearRealTime: { mode: 'outbound_messages', organizationId: sb.orgId },
      }),
      { id: 'salesforce', purposes: PURPOSES, logger: pino({ level: 'silent' }), baseDir: '.' },
    );
  const connector = make(sb.credentials.password);
  return {
    connector,
    badCredentials: () => make('wrong-password'),
    platform: 'salesforce',
    people: (n: number): SeedPerson[] => [...generatePeople(n, 11, { rates: { presence: { salesforce: 1 } }, purposes: PURPOSES, now: '2025-06-01T00:00:00Z' })],
    // One record per address, except converted Leads (skipped: their Contact holds the first address); bad addresses are rejects.
    expectedRecords: (people) =>
      people.reduce((n, p) => {
        const emails = (p.presence.salesforce?.emails ?? []).filter((e) => normalizeEmail(e).ok);
        return n + (p.index % 25 === 4 ? Math.min(1, emails.length) : emails.length);
      }, 0),
    pushBatch: { max: 200, callsPerBatch: 1 },
    maxPageRecords: 200,
    webhookHasTimestamp: false,
    webhookAuth: 'org-id',
    pullGrantsAllScope: false,
    forgeWebhook: (req) => {
      const body = req.rawBody.toString('utf8');
      const org = /<(?:\w+:)?OrganizationId>([^<]*)</.exec(body)?.[1] ?? '';
      if (org.slice(0, 15) !== sb.orgId.slice(0, 15)) throw new Error(`the delivery names org ${org}, not ${sb.orgId}`);
      return { ...req, rawBody: Buffer.from(body.replace(`OrganizationId>${org}<`, `OrganizationId>${OTHER_ORG}<`)) };
    },
    malformedWebhookBodies: (body) => [
      body.slice(0, -20),
      body.replace('<Notification>', '<Notification><Oops>'),
      'not xml',
      '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
      '<a/><b/>',
      '<?xml version="1.0"?><root><x/></root>',
    ],
    sandbox: {
      setFaults: (p) => sb.faults.set(p),
      resetFaults: () => sb.faults.set({ latencyMs: 0, errorRate: 0, rateLimitRate: 0, timeoutRate: 0, resetRate: 0, partialFailureRate: 0 }),
      calls: () => sb.calls.total,
      resetCalls: () => sb.calls.reset(),
      readState: (email) => Promise.resolve(readState(sb, email)),
      seed: (people) => {
        sb.reset();
        ensurePurposes();
        sb.seed(people);
        return Promise.resolve();
      },
      act: (action, email) => {
        if (action === 'optout') sb.actions.unsubscribe(email);
        return Promise.resolve();
      },
    },
    captureWebhook: (email) => captureOutbound(sb, () => sb.actions.unsubscribe(email)),
    async close() {
      await connector.close?.();
      await sb.stop();
    },
  };
}

runConnectorKit({ name: 'salesforce', setup: salesforceHarness });

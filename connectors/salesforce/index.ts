import { defineConnector, oneAtATimePerRecord } from '../../src/connectors/contract.js';
import type { CheckResult, Connector, ConnectorCapabilities, ConnectorContext, PullPage, PushResult, Scope } from '../../src/connectors/contract.js';
import { ALL_PURPOSES, type Change } from '../../src/model/types.js';
import { SalesforceClient, type ClientOptions } from './client.js';
import { purposeMap } from './mapping.js';
import { createOutboundWebhook } from './outbound.js';
import { pullPages, type PullDeps } from './pull.js';
import { MAX_RETRIEVE, pushChanges, type PushDeps } from './push.js';
import { salesforceSettings, type SalesforceSettings } from './settings.js';

export { salesforceSettings } from './settings.js';
export type { SalesforceSettings } from './settings.js';
export { outboundAckResponse } from './outbound.js';
export { API_RESERVE_CODE, ApiReserveError } from './client.js';

/**
 * Salesforce Contacts and Leads through jsforce (DESIGN.md section 3): consent flags, the
 * privacy objects (Individual, ContactPointTypeConsent per DataUsePurpose), bounces, erasure,
 * Outbound Messages. See mapping.ts (what the fields mean), pull.ts (cursor), push.ts (writes),
 * client.ts (auth, limits), outbound.ts (webhook).
 */
export const salesforceConnector = defineConnector({
  kind: 'salesforce',
  configSchema: salesforceSettings,
  create: (settings, ctx) => createSalesforceConnector(settings, ctx),
});

const PRIVACY_OBJECTS = ['Individual', 'ContactPointTypeConsent', 'DataUsePurpose'] as const;

export type SalesforceConnectorOptions = ClientOptions;

export function createSalesforceConnector(settings: SalesforceSettings, ctx: ConnectorContext, opts: SalesforceConnectorOptions = {}): Connector {
  const now = opts.now ?? Date.now;
  const client = new SalesforceClient(settings, ctx, opts);
  const purposes = purposeMap(settings.purposes);
  let privacyKnown: boolean | null = settings.privacy === 'auto' ? null : settings.privacy === 'on';
  let privacyProbe: Promise<boolean> | null = null;
  let purposeCache: Map<string, string> | null = null;

  /** Are the privacy objects in the org (whatever the setting says)? */
  const privacyAvailable = async (): Promise<boolean> => {
    const g = await client.request<{ sobjects: { name: string }[] }>({ method: 'GET', url: '/sobjects' });
    const names = new Set(g.sobjects.map((s) => s.name));
    return PRIVACY_OBJECTS.every((n) => names.has(n));
  };

  const detectPrivacy = (): Promise<boolean> => {
    if (privacyKnown !== null) return Promise.resolve(privacyKnown);
    privacyProbe ??= privacyAvailable()
      .then((available) => {
        privacyKnown = available;
        ctx.logger.info({ connector: ctx.id, privacy: privacyKnown }, 'salesforce privacy objects detected');
        return privacyKnown;
      })
      .finally(() => {
        privacyProbe = null;
      });
    return privacyProbe;
  };

  const purposeIds = async (refresh: boolean): Promise<Map<string, string>> => {
    if (purposeCache && !refresh) return purposeCache;
    const rows = await client.all<{ Id: string; Name: string }>('SELECT Id, Name FROM DataUsePurpose ORDER BY CreatedDate, Id');
    const map = new Map<string, string>();
    for (const canonical of purposes.mapped()) {
      for (const native of purposes.natives(canonical)) {
        const row = rows.find((r) => r.Name.trim().toLowerCase() === native.toLowerCase());
        if (row) {
          map.set(canonical, row.Id);
          break;
        }
      }
    }
    purposeCache = map;
    return map;
  };

  const deps: PushDeps = { client, settings, ctx, purposes, privacy: detectPrivacy, now, purposeIds, unlinked: new Map() };

  /** Before detection ('auto'), purposes are assumed expressible when any are mapped; push re-checks. */
  const capabilities = (): ConnectorCapabilities => {
    const privacy = privacyKnown ?? (settings.privacy === 'auto' && purposes.mapped().length > 0);
    const consent: Scope[] = [
      { channel: 'email', purpose: ALL_PURPOSES },
      { channel: 'phone', purpose: ALL_PURPOSES },
    ];
    if (settings.faxChannel === 'post') consent.push({ channel: 'post', purpose: ALL_PURPOSES });
    if (privacy) for (const p of purposes.mapped()) consent.push({ channel: 'email', purpose: p });
    return { consent, suppression: [], pushGrants: privacy, erase: true, acceptsUnknownAddresses: false };
  };

  const nrt = settings.nearRealTime;
  const webhook = nrt.mode === 'outbound_messages' ? createOutboundWebhook({ ...(deps as PullDeps), organizationId: nrt.organizationId }) : undefined;

  const connector: Connector = {
    id: ctx.id,
    kind: 'salesforce',
    // Developer Edition: 15,000 calls a day; concurrency is modest (25 long-running requests per org).
    // A push holds an email opt-out (email:* and every mapped purpose) of MAX_RETRIEVE records:
    // one retrieve per object type, then full 200-record collections calls (push.ts).
    // Two pushes at a time, never two holding the same record: a record's changes split over two
    // concurrent pushes could each find no Individual, create one apiece, and leave the consents
    // of the unlinked one orphaned. Two slots keep a big push from holding back instant ones.
    limits: { batchSize: MAX_RETRIEVE * (1 + purposes.mapped().length), requestsPerInterval: 20, intervalMs: 1_000, concurrency: 2 },
    get capabilities() {
      return capabilities();
    },
    pull(cursor: string | null): AsyncIterable<PullPage> {
      return pullPages(deps, cursor);
    },
    // Pushes sharing a record run one after another (see limits.concurrency).
    push: oneAtATimePerRecord((changes: Change[]): Promise<PushResult[]> => pushChanges(deps, changes)),
    ...(webhook ? { webhook } : {}),
    check: () => checkConnection(deps, privacyAvailable),
    close: () => client.close(),
  };
  return connector;
}

interface DescribeField {
  name: string;
  updateable?: boolean;
  createable?: boolean;
}

async function checkConnection(deps: PushDeps, privacyAvailable: () => Promise<boolean>): Promise<CheckResult> {
  const { client, settings } = deps;
  const details: string[] = [];
  let ok = true;
  const fail = (line: string): void => {
    ok = false;
    details.push(line);
  };
  try {
    await client.ensureLogin();
    const u = client.conn.userInfo;
    details.push(`logged in (${settings.auth.flow}${settings.auth.flow === 'password' ? (settings.auth.clientId ? ', OAuth 2.0' : ', SOAP login') : ''}) to ${client.conn.instanceUrl} as user ${u?.id ?? '?'} of org ${u?.organizationId ?? '?'}`);
    const nrt = settings.nearRealTime;
    if (nrt.mode === 'outbound_messages' && u?.organizationId && u.organizationId.slice(0, 15) !== nrt.organizationId.slice(0, 15)) {
      fail(`nearRealTime.organizationId ${nrt.organizationId} is not this org (${u.organizationId}): every Outbound Message would be rejected`);
    }
  } catch (err) {
    return { ok: false, details: [`login failed (${settings.auth.flow} at ${settings.loginUrl}): ${err instanceof Error ? err.message : String(err)}`] };
  }
  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      fail(`${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  await step('API version check', async () => {
    const versions = await client.request<{ version: string }[]>({ method: 'GET', url: '/services/data' });
    const newest = versions.map((v) => Number(v.version)).reduce((a, b) => Math.max(a, b), 0);
    if (versions.some((v) => v.version === settings.apiVersion)) details.push(`API version ${settings.apiVersion} available (newest ${newest.toFixed(1)})`);
    else fail(`API version ${settings.apiVersion} is not served by this org (newest ${newest.toFixed(1)}): set apiVersion`);
  });
  await step('daily API usage', async () => {
    await client.limits();
    const u = client.usage;
    const r = client.reserve();
    if (u && r !== null) {
      const line = `daily API usage ${u.used.toLocaleString('en-US')}/${u.limit.toLocaleString('en-US')} used, reserve ${r.toLocaleString('en-US')} (${String(settings.apiReserve)}): runs stop at ${(u.limit - r).toLocaleString('en-US')}`;
      if (client.reserveReached()) fail(`${line}; the reserve is already reached: pulls and pushes wait`);
      else details.push(line);
    }
  });
  let privacy = false;
  let available = false;
  await step('privacy objects detection', async () => {
    available = await privacyAvailable();
    privacy = settings.privacy !== 'off' && available;
    if (privacy) details.push('privacy objects (Individual, ContactPointTypeConsent, DataUsePurpose) available: purposes, grants and ShouldForget are used');
    else if (settings.privacy === 'on') {
      privacy = true; // report the fields the setting needs, too
      fail('privacy: on, but Individual / ContactPointTypeConsent / DataUsePurpose are not available: enable "Make Data Protection Details Available in Records" in Setup > Data Protection and Privacy');
    } else details.push('privacy objects not in use: flags only (HasOptedOutOfEmail, DoNotCall), no purposes, grants are not pushed');
  });
  const need: [string, string, 'updateable' | 'createable' | 'readable'][] = [];
  for (const type of settings.objects) {
    need.push([type, 'Email', 'readable'], [type, 'HasOptedOutOfEmail', 'updateable'], [type, 'DoNotCall', 'updateable'], [type, 'EmailBouncedReason', 'readable'], [type, 'SystemModstamp', 'readable']);
    if (settings.faxChannel === 'post') need.push([type, 'HasOptedOutOfFax', 'updateable']);
    if (privacy) need.push([type, 'IndividualId', 'updateable']);
  }
  if (privacy && available) {
    need.push(['Individual', 'ShouldForget', 'readable'], ['Individual', 'HasOptedOutSolicit', 'readable'], ['Individual', 'LastName', 'createable']);
    for (const f of ['PartyId', 'ContactPointType', 'PrivacyConsentStatus', 'DataUsePurposeId', 'CaptureDate', 'CaptureSource']) need.push(['ContactPointTypeConsent', f, 'createable']);
  }
  for (const type of [...new Set(need.map((n) => n[0]))]) {
    await step(`describe ${type}`, async () => {
      const d = await client.request<{ fields: DescribeField[] }>({ method: 'GET', url: `/sobjects/${type}/describe` });
      const byName = new Map(d.fields.map((f) => [f.name, f]));
      const problems: string[] = [];
      for (const [, name, mode] of need.filter((n) => n[0] === type)) {
        const f = byName.get(name);
        if (!f) problems.push(`${type}.${name} not readable: check field-level security`);
        else if (mode === 'updateable' && f.updateable !== true) problems.push(`${type}.${name} not updateable: check field-level security`);
        else if (mode === 'createable' && f.createable !== true) problems.push(`${type}.${name} not createable: check field-level security`);
      }
      if (problems.length === 0) details.push(`${type}: fields readable and writable as needed`);
      for (const p of problems) fail(p);
    });
  }
  if (privacy && available && deps.purposes.mapped().length > 0) {
    await step('DataUsePurpose lookup', async () => {
      const ids = await deps.purposeIds(true);
      for (const p of deps.purposes.mapped()) {
        if (ids.has(p)) details.push(`purpose ${p} <- DataUsePurpose ${deps.purposes.natives(p).map((n) => `"${n}"`).join(' / ')}`);
        else fail(`purpose ${p}: no DataUsePurpose named ${deps.purposes.natives(p).map((n) => `"${n}"`).join(' or ')} in the org (check settings.purposes)`);
      }
    });
  }
  details.push(settings.nearRealTime.mode === 'outbound_messages' ? 'near-real-time: Outbound Messages (POST /webhooks/<id>, answer with the SOAP Ack)' : 'near-real-time: none (incremental pulls only)');
  return { ok, details };
}

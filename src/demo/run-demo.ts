/**
 * `consentd demo`: four sandboxes seeded with people whose permissions disagree, the daemon on
 * SQLite, a full reconcile with a drift report, then a few people unsubscribing in different
 * platforms and how fast each opt-out shows in the others.
 */
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchDaemon, type StartedDaemon } from '../cli/run.js';
import { out, table, ttyProgress } from '../cli/runtime.js';
import { pullConnector } from '../engine/pull.js';
import { reconcile } from '../engine/reconcile.js';
import type { SeedPlatform } from '../sandbox/seed-types.js';
import { optOutView, pickOptOuts, playOptOut, targetsOf } from './observe.js';
import { PLATFORMS, startSandboxes, type SandboxSet } from './sandboxes.js';

export const DEMO_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));
/** The generator's "now": the same people every day. */
export const DEMO_SEED_NOW = '2025-06-01T00:00:00.000Z';
export const DEMO_ADMIN_TOKEN = 'demo-admin-token-0123456789';

export interface DemoOptions {
  people: number;
  seed: number;
  /** Store directory (wiped at start: the sandboxes start afresh too). */
  dir: string;
  /** Daemon port; 0 = a free one. */
  port: number;
  /** Sandbox ports portBase..portBase+3; 0 = free ones. */
  portBase: number;
  /** Opt-outs to play (round-robin over the platforms). */
  plays: number;
  logLevel?: string;
  /** How long to wait for the outbox to drain after the full reconcile. */
  drainTimeoutMs?: number;
}

export interface DriftRow {
  found: number;
  fixed: number;
  failed: number;
  left: number;
}

export interface PlayResult {
  email: string;
  origin: SeedPlatform;
  /** ms until each other platform showed the opt-out; null = not within the timeout. */
  reached: Partial<Record<SeedPlatform, number | null>>;
}

export interface DemoResult {
  people: number;
  platforms: SeedPlatform[];
  subjects: number;
  drift: Record<string, DriftRow>;
  plays: PlayResult[];
  address: string;
}

export interface RunningDemo {
  result: DemoResult;
  set: SandboxSet;
  daemon: StartedDaemon;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const p = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => res(p));
    });
  });
}

function parseCounter(text: string, name: string, result: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const connector = /connector="([^"]+)"/.exec(line)?.[1];
    const r = /result="([^"]+)"/.exec(line)?.[1];
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (connector !== undefined && r === result) m.set(connector, (m.get(connector) ?? 0) + v);
  }
  return m;
}

const NAMES: Record<SeedPlatform, string> = { salesforce: 'Salesforce', hubspot: 'HubSpot', mailchimp: 'Mailchimp', sendgrid: 'SendGrid' };

export async function runDemo(opts: DemoOptions): Promise<RunningDemo> {
  const port = opts.port || (await freePort());
  const dir = resolve(opts.dir);
  for (const f of ['consentd.db', 'consentd.db-wal', 'consentd.db-shm']) rmSync(join(dir, f), { force: true });

  out.line(`starting the sandboxes: ${opts.people} people (seed ${opts.seed}) in Salesforce, HubSpot, Mailchimp and SendGrid, with disagreements`);
  const set = await startSandboxes({ people: opts.people, seed: opts.seed, seedNow: DEMO_SEED_NOW, portBase: opts.portBase, webhooks: `http://127.0.0.1:${port}` });
  let daemon: StartedDaemon | null = null;
  try {
    Object.assign(process.env, {
      DEMO_STORE: join(dir, 'consentd.db'),
      DEMO_PORT: String(port),
      DEMO_LOG_LEVEL: opts.logLevel ?? 'warn',
      DEMO_SALESFORCE_URL: set.salesforce.url,
      DEMO_SALESFORCE_ORG: set.salesforce.orgId,
      DEMO_HUBSPOT_URL: set.hubspot.url,
      DEMO_HUBSPOT_APP_ID: String(set.hubspot.credentials.appId),
      DEMO_MAILCHIMP_URL: set.mailchimp.url,
      DEMO_SENDGRID_URL: set.sendgrid.url,
      DEMO_SENDGRID_PUBLIC_KEY: set.sendgrid.credentials.publicKey,
    });
    const tty = ttyProgress();
    daemon = await launchDaemon({ config: DEMO_CONFIG, ...(opts.logLevel ? { logLevel: opts.logLevel } : {}) }, { handleSignals: false, catchUp: false, ...(tty.progress ? { progress: tty.progress } : {}) });
    const { rt } = daemon;
    const platforms = PLATFORMS.filter((p) => rt.connectors.some((c) => c.id === p));
    out.line(`consentd listening on ${daemon.daemon.address} (store ${rt.config.store.path})`);

    // 1. Full reconcile: pull everything, decide everyone, queue the corrections, push them.
    out.line('\nfull reconcile: pulling every system, deciding every person, pushing the corrections...');
    const started = Date.now();
    for (const c of rt.connectors) {
      const s = await pullConnector(rt.engine, c, { full: true });
      if (!tty.progress) out.line(`  pulled ${c.id}: ${s.records} records, ${s.observations} statements`);
    }
    const rec = await reconcile(rt.engine, 'normal');
    daemon.daemon.workers.notifyAll();
    const drainDeadline = Date.now() + (opts.drainTimeoutMs ?? 180_000);
    let left: Record<string, number> = {};
    for (;;) {
      left = await rt.store.outboxDepth();
      const n = Object.values(left).reduce((a, b) => a + b, 0);
      tty.progress?.({ phase: 'apply', connectorId: null, counts: { queued: n } });
      if (n === 0 || Date.now() > drainDeadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    tty.done();
    const metrics = await daemon.daemon.metrics.scrape();
    const fixed = parseCounter(metrics, 'consentd_pushes_total', 'ok');
    const dead = new Map<string, number>();
    for (const d of await rt.store.listDeadLetters(100_000)) dead.set(d.change.connectorId, (dead.get(d.change.connectorId) ?? 0) + 1);
    const drift: Record<string, DriftRow> = {};
    for (const c of rt.connectors) drift[c.id] = { found: rec.byConnector[c.id] ?? 0, fixed: fixed.get(c.id) ?? 0, failed: dead.get(c.id) ?? 0, left: left[c.id] ?? 0 };
    out.line(`\ndrift report (${rec.subjects} people, ${((Date.now() - started) / 1000).toFixed(1)} s):`);
    out.line(
      table([
        ['system', 'disagreements found', 'fixed', 'failed', 'still queued'],
        ...Object.entries(drift).map(([id, d]) => [id, d.found, d.fixed, d.failed, d.left]),
      ]),
    );
    const followUps = Object.values(drift).reduce((a, d) => a + Math.max(0, d.fixed - d.found), 0);
    if (followUps > 0) out.line(`(fixed includes ${followUps} follow-up correction(s) from webhooks the platforms sent meanwhile)`);
    if (rec.erased > 0) out.line(`${rec.erased} person(s) had asked to be erased: erased everywhere (rule 6)`);

    // 2. People unsubscribe in one platform; time until every other platform shows it.
    out.line('\nnow some people click "unsubscribe" in one platform:');
    const plays: PlayResult[] = [];
    for (const { person, origin } of pickOptOuts(opts.plays, opts.people, opts.seed, platforms, { now: DEMO_SEED_NOW })) {
      const email = person.email;
      const targets = targetsOf(set, email, origin, platforms);
      const reached: PlayResult['reached'] = Object.fromEntries(targets.map((t) => [t, null]));
      const t0 = performance.now();
      await playOptOut(set, origin, email);
      const deadline = t0 + 20_000;
      let waiting = [...targets];
      while (waiting.length > 0 && performance.now() < deadline) {
        waiting = waiting.filter((t) => {
          if (optOutView(set, t, email) !== 'opted_out') return true;
          reached[t] = Math.round(performance.now() - t0);
          return false;
        });
        if (waiting.length > 0) await new Promise((r) => setTimeout(r, 5));
      }
      plays.push({ email, origin, reached });
      const parts = targets.map((t) => `${NAMES[t]} ${reached[t] === null ? 'NOT within 20 s' : `${reached[t]} ms`}`);
      out.line(`  ${email} unsubscribed in ${NAMES[origin]} -> ${parts.join(', ')}`);
    }

    const result: DemoResult = { people: opts.people, platforms, subjects: rec.subjects, drift, plays, address: daemon.daemon.address };
    const d = daemon;
    return {
      result,
      set,
      daemon: d,
      async stop() {
        await d.daemon.shutdown('demo finished');
        d.hooks.close();
        await set.stop();
      },
    };
  } catch (err) {
    if (daemon) await daemon.daemon.shutdown('demo failed').catch(() => undefined);
    await set.stop();
    throw err;
  }
}

export function printDemoUrls(demo: RunningDemo): void {
  const { set, result } = demo;
  out.line('\nstill running:');
  out.line(`  consentd   ${result.address}   /metrics /readyz /healthz; admin API /v1 (Authorization: Bearer ${DEMO_ADMIN_TOKEN})`);
  out.line(`  salesforce ${set.roots.salesforce}   hubspot ${set.roots.hubspot}   mailchimp ${set.roots.mailchimp}   sendgrid ${set.roots.sendgrid}`);
  out.line(`  play an opt-out: curl -X POST ${set.roots.hubspot}/__sandbox/actions/unsubscribe -H 'content-type: application/json' -d '{"email":"..."}'`);
  out.line(`  explain a person: curl -H 'Authorization: Bearer ${DEMO_ADMIN_TOKEN}' ${result.address}/v1/subjects/<email>`);
  out.line('Ctrl-C to stop');
}

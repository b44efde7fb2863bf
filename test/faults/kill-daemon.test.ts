import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli, workspace, type Workspace } from '../helpers/cli.js';
import { signTestBody, TEST_SIGNATURE_HEADER, type TestUnsubscribe } from '../helpers/test-connectors.js';

/*
 * kill -9 a real `consentd run` at random points while it takes signed opt-out webhooks and
 * pushes the corrections, 20 times in a row, restarting it each time (each restart recovers
 * from the previous kill). Like a platform, the sender retries every webhook that did not get a
 * 2xx answer, with the same event id. At the end:
 * - every acknowledged opt-out reached every other system (two CSV lists);
 * - none was applied twice: each address has exactly one row per list, each correction was
 *   done once in the outbox, and each event id was stored once;
 * - the last run shuts down gracefully on SIGTERM with exit code 0.
 * The webhook source is the test-only `testhook` kind (CONSENTD_TEST_CONNECTORS=1).
 */

const TRIALS = 20;
const PER_TRIAL = 12;
const SECRET = 'hook-secret-0123456789';
const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';

let ws: Workspace | undefined;
afterAll(() => ws?.remove());

/** mulberry32: reproducible kill points (seed printed on failure). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Daemon {
  child: ChildProcess;
  url: string;
  /** Log lines seen so far, by message. */
  counts: Map<string, number>;
  onLine: ((msg: string) => void) | null;
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string[];
}

function startDaemon(config: string): Promise<Daemon> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(['--config', config, 'run'], { env: { CONSENTD_TEST_CONNECTORS: '1' } });
    const d: Daemon = {
      child,
      url: '',
      counts: new Map(),
      onLine: null,
      stderr: [],
      closed: new Promise((r) => child.on('close', (code, signal) => r({ code, signal }))),
    };
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`daemon did not start\n${d.stderr.slice(-20).join('\n')}`)), 15_000);
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m && !d.url) {
        d.url = m[1] as string;
        clearTimeout(timer);
        resolve(d);
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      let nl: number;
      while ((nl = err.indexOf('\n')) !== -1) {
        const line = err.slice(0, nl);
        err = err.slice(nl + 1);
        d.stderr.push(line);
        const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? '';
        d.counts.set(msg, (d.counts.get(msg) ?? 0) + 1);
        d.onLine?.(msg);
      }
    });
    child.on('error', reject);
  });
}

/** POST one signed delivery; true when acknowledged (2xx). */
async function deliver(url: string, events: TestUnsubscribe[]): Promise<boolean> {
  const body = JSON.stringify(events);
  try {
    const res = await fetch(`${url}/webhooks/hook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [TEST_SIGNATURE_HEADER]: signTestBody(SECRET, body) },
      body,
      signal: AbortSignal.timeout(5000),
    });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function rows(file: string): Map<string, number> {
  const n = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
    if (line.trim() === '') continue;
    const f = line.split(',');
    expect(f[3]).toBe('unsubscribed');
    const k = `${f[0]}|${f[1]}|${f[2]}`;
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return n;
}

describe('faults: kill -9 the daemon during intake and apply', () => {
  it(`${TRIALS} kills at random points: every acknowledged opt-out reaches every system exactly once`, { timeout: 120_000 }, async () => {
    const seed = Number(process.env['KILL_SEED'] ?? Date.now() % 100_000);
    const random = rng(seed);
    ws = workspace('consentd-kill-daemon-');
    ws.write('a.csv', HEADER);
    ws.write('b.csv', HEADER);
    const config = ws.write(
      'consentd.yaml',
      [
        'salt: "test-salt-0123456789abcdef"',
        'store: { path: ./data/consentd.db }',
        'log: { level: debug }',
        'schedule: { full: null, incremental: null, reconfirm: null }',
        'http: { host: 127.0.0.1, port: 0 }',
        'outbox: { linger: 5ms, baseDelay: 50ms, maxDelay: 1s }',
        'connectors:',
        '  - { id: crm, kind: csv, limits: { batchSize: 3 }, settings: { path: a.csv } }',
        '  - { id: esp, kind: csv, limits: { batchSize: 3 }, settings: { path: b.csv } }',
        `  - { id: hook, kind: testhook, settings: { secret: "${SECRET}" } }`,
      ].join('\n') + '\n',
    );

    const acked = new Set<string>(); // emails whose opt-out got a 2xx
    let unacked: TestUnsubscribe[][] = []; // deliveries to retry, as the platform would
    const sentIds = new Set<string>();
    const modes: Record<string, number> = {};
    let eventNo = 0;
    let retried = 0; // deliveries that got no 2xx before a kill and were sent again
    let recoveries = 0; // starts that found work interrupted by the previous kill

    for (let trial = 0; trial < TRIALS; trial++) {
      const d = await startDaemon(config);
      // The kill point: a random delay, or the k-th intake / pushed batch of this run.
      const mode = (['delay', 'intake', 'push'] as const)[Math.floor(random() * 3)] ?? 'delay';
      modes[mode] = (modes[mode] ?? 0) + 1;
      const k = 1 + Math.floor(random() * 4);
      const kill = (): void => void d.child.kill('SIGKILL');
      let seen = 0;
      if (mode === 'delay') setTimeout(kill, Math.floor(random() * 120));
      else
        d.onLine = (msg) => {
          if ((mode === 'intake' && msg === 'webhook intake') || (mode === 'push' && msg === 'batch pushed')) {
            if (++seen === k) kill();
          }
        };

      const deliveries: TestUnsubscribe[][] = unacked;
      retried += unacked.length;
      unacked = [];
      for (let i = 0; i < PER_TRIAL; ) {
        const size = Math.min(PER_TRIAL - i, 1 + Math.floor(random() * 3));
        const batch: TestUnsubscribe[] = [];
        for (let j = 0; j < size; j++, i++) {
          const n = eventNo++;
          batch.push({ id: `ev-${n}`, email: `Person.${n}@Example.com`, at: new Date(Date.UTC(2025, 0, 1, 0, 0, n % 60)).toISOString() });
        }
        deliveries.push(batch);
      }
      // Three deliveries in flight at a time.
      let next = 0;
      await Promise.all(
        [0, 1, 2].map(async () => {
          while (next < deliveries.length) {
            const batch = deliveries[next++] as TestUnsubscribe[];
            for (const e of batch) sentIds.add(e.id);
            if (await deliver(d.url, batch)) for (const e of batch) acked.add(e.email.toLowerCase());
            else unacked.push(batch);
          }
        }),
      );
      // Let intake and apply run into the kill point (or past it, when it was never reached).
      await Promise.race([d.closed, new Promise((r) => setTimeout(r, 150))]);
      kill();
      const end = await d.closed;
      expect(end.signal).toBe('SIGKILL');
      if ((d.counts.get('recovered from an interrupted run') ?? 0) + (d.counts.get('recovery: dirty subjects reconciled') ?? 0) > 0) recoveries++;
    }
    // The kills did land mid-work.
    expect(retried + recoveries).toBeGreaterThan(0);

    // The last start: retries the unacknowledged deliveries, converges, stops gracefully.
    const d = await startDaemon(config);
    retried += unacked.length;
    for (const batch of unacked) {
      expect(await deliver(d.url, batch)).toBe(true);
      for (const e of batch) acked.add(e.email.toLowerCase());
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      const a = rows(ws.path('a.csv'));
      const b = rows(ws.path('b.csv'));
      const missing = [...acked].filter((e) => !a.has(`${e}|email|*`) || !b.has(`${e}|email|*`));
      if (missing.length === 0) break;
      if (Date.now() > deadline) throw new Error(`seed ${seed}: ${missing.length} acknowledged opt-outs never arrived, e.g. ${missing.slice(0, 3).join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Give the workers a moment to settle what is still in flight, then SIGTERM.
    await new Promise((r) => setTimeout(r, 200));
    d.child.kill('SIGTERM');
    const end = await d.closed;
    expect(end.code, d.stderr.slice(-5).join('\n')).toBe(0);

    // Every address sent (all were eventually acknowledged) is in each list exactly once.
    expect(acked.size).toBe(TRIALS * PER_TRIAL);
    for (const file of ['a.csv', 'b.csv']) {
      const r = rows(ws.path(file));
      expect(r.size, `${file} (seed ${seed})`).toBe(acked.size);
      expect([...r.entries()].filter(([, n]) => n > 1), `${file}: rows applied twice (seed ${seed})`).toEqual([]);
    }
    const db = new Database(ws.path('data/consentd.db'), { readonly: true });
    try {
      const states = Object.fromEntries((db.prepare('SELECT state, count(*) AS n FROM outbox GROUP BY state').all() as Array<{ state: string; n: number }>).map((x) => [x.state, x.n]));
      expect(Object.keys(states).filter((s) => s !== 'done' && s !== 'superseded'), JSON.stringify(states)).toEqual([]);
      expect(states['done']).toBe(2 * acked.size);
      const events = db.prepare('SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM webhook_events').get() as { n: number; d: number };
      expect(events.n).toBe(sentIds.size);
      expect(events.d).toBe(sentIds.size);
    } finally {
      db.close();
    }
    console.log(`kill-daemon: ${TRIALS} trials (seed ${seed}), kill points ${JSON.stringify(modes)}, ${acked.size} opt-outs, ${retried} deliveries retried after a kill, ${recoveries} restarts recovered interrupted work; every opt-out in every list exactly once`);
  });
});

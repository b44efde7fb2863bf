/**
 * bench/propagate: how fast does an opt-out made in one platform show in every other?
 *   npm run bench -- propagate [--rate 200] [--duration 20] [--people N] [--seed 7]
 *
 * The four sandboxes run in this process, seeded from the shared generator; `consentd run` runs
 * as a child process on SQLite (a temp dir), its webhooks wired to the sandboxes. After the
 * catch-up full reconcile has converged (outbox empty), people opt out of all email through the
 * sandboxes' control actions (the unsubscribe link: each emits the platform's real signed
 * webhook) at a steady `rate` per second for `duration` seconds, round-robin over the
 * platforms. For each opt-out the time is taken from the action to the moment every other
 * platform holding the person (SendGrid: always) shows it, by polling the sandboxes' state every
 * few milliseconds. Reports p50 / p90 / p99 / max, the rate actually played, the rate of fully
 * propagated opt-outs, and the number lost (not everywhere 30 s after the last action).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { optOutView, pickOptOuts, playOptOut, targetsOf } from '../../src/demo/observe.js';
import { PLATFORMS, startSandboxes, type SandboxSet } from '../../src/demo/sandboxes.js';
import { defaultRegistry } from '../../src/connectors/registry.js';
import type { SeedPlatform } from '../../src/sandbox/seed-types.js';

export interface PropagateOptions {
  rate: number;
  durationS: number;
  people?: number;
  seed: number;
  /** Log level of the daemon (default warn). */
  logLevel?: string;
  /** Only these platforms (default: every one whose connector is registered). */
  platforms?: readonly SeedPlatform[];
  /** Own writes coming back as webhooks: 'filtered' (the recommended setup, default) or 'all'. */
  echoes?: 'filtered' | 'all';
}

export interface PropagateFigures {
  platforms: string;
  people: number;
  rate_target: number;
  duration_s: number;
  played: number;
  played_per_s: number;
  propagated: number;
  propagated_per_s: number;
  lost: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  initial_converge_s: number;
  daemon_peak_rss_mb: number;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SEED_NOW = '2025-06-01T00:00:00.000Z';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

async function metric(url: string, name: string, match: (labels: string) => boolean = () => true): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([-\d.e+]+)$/.exec(line);
    if (m && m[1] === name && match(m[2] ?? '')) sum += Number(m[3]);
  }
  return sum;
}

/** Start `consentd run` as a child; resolves with its URL once it listens. */
export function spawnDaemon(config: string): Promise<{ child: ChildProcess; url: string; stderr: () => string; closed: Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(process.env['PROPAGATE_DAEMON_NODE_ARGS'] ?? '').split(' ').filter(Boolean), '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), '--config', config, 'run'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-20_000);
    });
    const timer = setTimeout(() => reject(new Error(`daemon did not start: ${err}`)), 30_000);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string, stderr: () => err, closed });
      }
    });
    void closed.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${String(code)}): ${err}`));
    });
  });
}

/** Wait until the catch-up full run finished and the outbox is empty. */
export async function waitConverged(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const full = await metric(url, 'consentd_runs_total', (l) => l.includes('kind="full"'));
    if (full > 0) {
      const failed = await metric(url, 'consentd_runs_total', (l) => l.includes('kind="full"') && l.includes('status="failed"'));
      if (failed > 0) throw new Error('the initial full run failed (see the daemon log)');
      const depth = await metric(url, 'consentd_outbox_depth');
      if (depth === 0) return;
    }
    if (Date.now() > deadline) throw new Error('the initial reconcile did not converge in time');
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function benchPropagate(opts: PropagateOptions): Promise<PropagateFigures> {
  const kinds = new Set(defaultRegistry().kinds());
  const platforms = PLATFORMS.filter((p) => kinds.has(p) && (opts.platforms === undefined || opts.platforms.includes(p)));
  if (platforms.length < 2) throw new Error(`need at least two platform connectors registered; have ${[...kinds].join(', ')}`);
  const count = Math.round(opts.rate * opts.durationS);
  const people = opts.people ?? Math.max(2000, Math.ceil(count * 2.5));
  const dir = mkdtempSync(join(tmpdir(), 'consentd-propagate-'));
  const port = await freePort();
  let set: SandboxSet | null = null;
  let daemon: Awaited<ReturnType<typeof spawnDaemon>> | null = null;
  let peakRss = 0;
  try {
    set = await startSandboxes({
      people,
      seed: opts.seed,
      seedNow: SEED_NOW,
      webhooks: `http://127.0.0.1:${port}`,
      // HubSpot: Professional limits (190 / 10 s) and its batched webhook deliveries.
      hubspot: { tenSecondlyLimit: 190, webhookBatchMs: 100 },
      webhookRetryDelaysMs: [200, 1000, 2000, 5000],
      echoes: opts.echoes ?? 'filtered',
    });
    const config = join(dir, 'consentd.yaml');
    writeFileSync(config, set.configYaml({ storePath: join(dir, 'consentd.db'), port, logLevel: opts.logLevel ?? 'warn', schedule: 'full', platforms }));
    const started = Date.now();
    daemon = await spawnDaemon(config);
    await waitConverged(daemon.url, 600_000);
    const convergeS = (Date.now() - started) / 1000;
    console.error(`propagate: ${people} people on ${platforms.join(', ')}; initial reconcile converged in ${convergeS.toFixed(1)} s`);

    const picks = pickOptOuts(count, people, opts.seed, platforms, { now: SEED_NOW });
    if (picks.length < count) throw new Error(`only ${picks.length} clean people for ${count} opt-outs: raise --people`);

    interface Pending {
      email: string;
      origin: SeedPlatform;
      targets: SeedPlatform[];
      at: number;
    }
    /** origin -> latencies; "origin>target" -> time each target showed it. */
    const breakdown = new Map<string, number[]>();
    const note = (k: string, ms: number): void => {
      const l = breakdown.get(k) ?? [];
      l.push(ms);
      breakdown.set(k, l);
    };
    const s = set;
    const pending: Pending[] = [];
    const latencies: number[] = [];
    const completions: number[] = [];
    let played = 0;
    let failedActions = 0;
    const intervalMs = 1000 / opts.rate;
    const cpuOf = async (): Promise<number> => {
      const st = await (await import('node:fs/promises')).readFile(`/proc/${daemon?.child.pid ?? 0}/stat`, 'utf8').catch(() => '');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) * 10; // ms (USER_HZ 100)
    };
    const daemonCpu0 = await cpuOf();
    const benchCpu0 = process.cpuUsage();
    const t0 = performance.now();

    const poll = setInterval(() => {
      const now = performance.now();
      for (let i = pending.length - 1; i >= 0; i--) {
        const p = pending[i] as Pending;
        p.targets = p.targets.filter((t) => {
          if (optOutView(s, t, p.email) !== 'opted_out') return true;
          note(`${p.origin}>${t}`, now - p.at);
          return false;
        });
        if (p.targets.length === 0) {
          note(p.origin, now - p.at);
          latencies.push(now - p.at);
          completions.push(now);
          pending.splice(i, 1);
        }
      }
    }, 5);
    const rss = setInterval(() => {
      if (daemon?.child.pid === undefined) return;
      void import('node:fs/promises')
        .then((fs) => fs.readFile(`/proc/${daemon?.child.pid ?? 0}/status`, 'utf8'))
        .then((st) => {
          const kb = Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0);
          peakRss = Math.max(peakRss, kb / 1024);
        })
        .catch(() => undefined);
    }, 1000);

    // Steady rate: each opt-out at t0 + i * interval; late timers catch up without bursts beyond the backlog.
    const actions: Promise<void>[] = [];
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(count, Math.floor((performance.now() - t0) / intervalMs) + 1);
        while (played < due) {
          const { person, origin } = picks[played] as (typeof picks)[number];
          played++;
          const email = person.email;
          const targets = targetsOf(s, email, origin, platforms);
          const p: Pending = { email, origin, targets, at: performance.now() };
          pending.push(p);
          actions.push(
            playOptOut(s, origin, email).catch(() => {
              failedActions++;
            }),
          );
        }
        if (played >= count) resolve();
        else setTimeout(tick, Math.max(0, t0 + played * intervalMs - performance.now()));
      };
      tick();
    });
    const playEnd = performance.now();
    await Promise.all(actions);
    const drainDeadline = performance.now() + 30_000;
    while (pending.length > 0 && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 20));
    clearInterval(poll);
    clearInterval(rss);
    const wall = performance.now() - t0;
    const benchCpu = process.cpuUsage(benchCpu0);
    console.error(`  cpu: daemon ${Math.round(((await cpuOf()) - daemonCpu0) / wall * 100)}%, sandboxes+player ${Math.round((benchCpu.user + benchCpu.system) / 1000 / wall * 100)}% of one core over ${Math.round(wall)} ms`);

    if (process.env['PROPAGATE_DEBUG']) {
      const text = await (await fetch(`${daemon.url}/metrics`)).text();
      console.error(text.split('\n').filter((l) => /^consentd_(api_calls|rate_limit|webhook_events|pushes|propagation_seconds_(sum|count)|push_(duration_seconds|batch_changes)_(sum|count)|webhook_rejections|nodejs_eventloop_lag_(p50|p99|max)_seconds)/.test(l)).join('\n'));
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const lastCompletion = completions.length > 0 ? Math.max(...completions) : playEnd;
    const figures: PropagateFigures = {
      platforms: platforms.join('+'),
      people,
      rate_target: opts.rate,
      duration_s: opts.durationS,
      played,
      played_per_s: Math.round((played / ((playEnd - t0) / 1000)) * 10) / 10,
      propagated: latencies.length,
      propagated_per_s: Math.round((latencies.length / ((lastCompletion - t0) / 1000)) * 10) / 10,
      lost: pending.length + failedActions,
      p50_ms: Math.round(quantile(sorted, 0.5)),
      p90_ms: Math.round(quantile(sorted, 0.9)),
      p99_ms: Math.round(quantile(sorted, 0.99)),
      max_ms: Math.round(sorted[sorted.length - 1] ?? NaN),
      initial_converge_s: Math.round(convergeS * 10) / 10,
      daemon_peak_rss_mb: Math.round(peakRss),
    };
    for (const [k, l] of [...breakdown.entries()].sort()) {
      const x = [...l].sort((a, b) => a - b);
      console.error(`  ${k.padEnd(22)} n=${String(x.length).padStart(5)}  p50 ${Math.round(quantile(x, 0.5))} ms  p99 ${Math.round(quantile(x, 0.99))} ms`);
    }
    if (pending.length > 0) console.error(`propagate: ${pending.length} opt-outs not everywhere, e.g. ${pending.slice(0, 3).map((p) => `${p.origin}->${p.targets.join('/')}`).join(', ')}`);
    return figures;
  } finally {
    if (daemon) {
      daemon.child.kill('SIGTERM');
      await Promise.race([daemon.closed, new Promise((r) => setTimeout(r, 10_000))]);
      daemon.child.kill('SIGKILL');
    }
    await set?.stop();
    if (process.env['PROPAGATE_KEEP']) console.error(`propagate: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

export async function runPropagateBench(opts: PropagateOptions): Promise<void> {
  const f = await benchPropagate(opts);
  console.log(`\npropagate, ${f.rate_target} opt-outs/s for ${f.duration_s} s over ${f.platforms}:`);
  console.table(f);
  console.log(JSON.stringify(f));
}

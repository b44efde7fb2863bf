import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { csvConfig, runCli, spawnCli, workspace, type Workspace } from '../helpers/cli.js';

/*
 * kill -9 a real `consentd apply` in the middle of pushing, then run apply again: the files and
 * the store must agree (a fresh plan is empty) and no change may have been applied twice (no
 * duplicated rows in the CSV files; every change counted done exactly once). The first load's
 * changes are queued in batch rows (outbox-batches.ts), so the kill also lands between a batch's
 * claim and its completion.
 */

const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';
const N = 300;
const BATCH = 8;

let ws: Workspace | undefined;
afterEach(() => {
  ws?.remove();
  ws = undefined;
});

const email = (i: number): string => `p${String(i).padStart(4, '0')}@example.com`;

function seed(w: Workspace): string {
  let crm = HEADER;
  let esp = HEADER;
  for (let i = 0; i < N; i++) {
    // crm holds an explicit grant; esp a later denial (all purposes for even people): crm must be corrected.
    crm += `${email(i)},email,newsletter,subscribed,2024-01-01,signup form ${i}\n`;
    esp += i % 2 === 0 ? `${email(i)},email,*,unsubscribed,2024-02-01,\n` : `${email(i)},email,news,unsubscribed,2024-02-01,\n`;
  }
  w.write('crm.csv', crm);
  w.write('esp.csv', esp);
  return w.write(
    'consentd.yaml',
    csvConfig({
      connectors: [
        { id: 'crm', file: 'crm.csv', grants: true, limits: { batchSize: BATCH } },
        { id: 'esp', file: 'esp.csv', purposes: { news: 'newsletter' }, limits: { batchSize: BATCH } },
      ],
      logLevel: 'debug',
    }),
  );
}

/** Start apply and SIGKILL it once `batches` pushes were logged; resolves when it is dead. */
function applyAndKill(config: string, batches: number): Promise<{ signal: NodeJS.Signals | null; seen: number }> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(['--config', config, 'apply']);
    let seen = 0;
    let buf = '';
    let killed = false;
    child.stdout?.resume();
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.includes('"msg":"batch pushed"')) seen++;
        if (!killed && seen >= batches) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('apply did not reach the kill point'));
    }, 25_000);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      resolve({ signal, seen });
    });
  });
}

/** Changes per outbox state as `consentd status` counts them (per-change rows and batch members), the empty ones left out. */
async function outboxStates(config: string): Promise<Record<string, number>> {
  const r = await runCli(['--config', config, 'status', '--json', '--log-level', 'warn']);
  expect(r.code, r.stderr).toBe(0);
  const { stats } = JSON.parse(r.stdout) as { stats: { outbox: Record<string, number> } };
  return Object.fromEntries(Object.entries(stats.outbox).filter(([, n]) => n > 0));
}

/** Corrections (connector, record, op, channel, purpose) done more than once by per-change rows (a first load's batches keep no rows per change). */
function doneTwice(w: Workspace): string[] {
  const db = new Database(w.path('data/consentd.db'), { readonly: true });
  try {
    const rows = db
      .prepare(
        `SELECT connector_id || '|' || record_id || '|' || op || '|' || channel || '|' || purpose AS k FROM outbox WHERE state = 'done'
         GROUP BY connector_id, record_id, op, channel, purpose HAVING count(*) > 1`,
      )
      .all() as Array<{ k: string }>;
    return rows.map((r) => r.k);
  } finally {
    db.close();
  }
}

/** Data rows keyed by (email, channel, purpose, suppression marker or not): each at most once. */
function duplicates(file: string): string[] {
  const seen = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
    if (line.trim() === '') continue;
    const f = line.split(',');
    const k = `${f[0]}|${f[1]}|${f[2]}|${f[5] === 'consentd:suppressed' ? 'marker' : 'consent'}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  return [...seen.entries()].filter(([, n]) => n > 1).map(([k]) => k);
}

describe('faults: kill -9 during apply', () => {
  for (const killAfter of [1, 12]) {
    it(`recovers after a kill following batch ${killAfter}: converged, nothing applied twice`, async () => {
      ws = workspace('consentd-kill-');
      const config = seed(ws);

      const killed = await applyAndKill(config, killAfter);
      expect(killed.signal).toBe('SIGKILL');
      const mid = await outboxStates(config);
      // The kill really happened mid-apply: work was left.
      expect((mid['pending'] ?? 0) + (mid['in_flight'] ?? 0)).toBeGreaterThan(0);
      expect(mid['done'] ?? 0).toBeGreaterThan(0);

      const again = await runCli(['--config', config, 'apply', '--log-level', 'warn'], { timeoutMs: 25_000 });
      expect(again.stderr).toMatch(/recovered from an interrupted run|^$/);
      expect(again.code, again.stderr + again.stdout).toBe(0);

      // Nothing left to do. `superseded`: a pending correction replaced by the same correction
      // justified by a newer observation (the other system's echo); it was never pushed.
      const states = await outboxStates(config);
      expect(Object.keys(states).filter((s) => s !== 'done' && s !== 'superseded')).toEqual([]);
      // Each correction (record, scope, op) done exactly once.
      expect(doneTwice(ws)).toEqual([]);

      const plan = await runCli(['--config', config, 'plan', '--json', '--log-level', 'warn']);
      expect(plan.code).toBe(0);
      expect((JSON.parse(plan.stdout) as { changes: unknown[] }).changes).toEqual([]);

      expect(duplicates(ws.path('crm.csv'))).toEqual([]);
      expect(duplicates(ws.path('esp.csv'))).toEqual([]);
      const crm = readFileSync(ws.path('crm.csv'), 'utf8');
      // Every grant corrected, every "all purposes" denial added exactly once.
      expect(crm.match(/,email,newsletter,subscribed,/g)).toBeNull();
      expect(crm.match(/,email,newsletter,unsubscribed,/g)).toHaveLength(N);
      expect(crm.match(/,email,\*,unsubscribed,/g)).toHaveLength(N / 2);
      // crm: every newsletter grant and the "*" of even people; esp: newsletter of even people (rule 4).
      // Each counted done once, whether it was pushed once or again after the kill.
      expect(states['done']).toBe(N + N / 2 + N / 2);
    });
  }
});

import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { csvConfig, runCli, spawnCli, workspace, type Workspace } from '../helpers/cli.js';

/*
 * kill -9 a real `consentd plan --full` while it loads a fresh store in bulk (the pulls append to
 * the logs; then one absorb moves everything at once, filling the empty records table before
 * building its index), at several points; then run it again to the end. The store and the plan
 * must be those of a run that was never interrupted: a pull can always be re-run, and a bulk
 * absorb is one transaction (all of it or nothing).
 */

const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';
const N = 12_000;

const workspaces: Workspace[] = [];
afterEach(() => {
  for (const w of workspaces.splice(0)) w.remove();
});

const email = (i: number): string => `p${String(i).padStart(5, '0')}@example.com`;

function seed(): { ws: Workspace; config: string } {
  const ws = workspace('consentd-bulk-kill-');
  workspaces.push(ws);
  let crm = HEADER;
  let esp = HEADER;
  for (let i = 0; i < N; i++) {
    crm += `${email(i)},email,newsletter,subscribed,2024-01-01,signup form ${i}\n`;
    // the same person twice on some lines (a case variant): one record, two statements
    if (i % 7 === 0) crm += `${email(i).toUpperCase()},email,*,unsubscribed,2024-03-01,\n`;
    esp += i % 3 === 0 ? `${email(i)},email,*,unsubscribed,2024-02-01,\n` : `${email(i)},email,news,subscribed,2024-02-01,double opt-in\n`;
  }
  ws.write('crm.csv', crm);
  ws.write('esp.csv', esp);
  const config = ws.write(
    'consentd.yaml',
    csvConfig({
      connectors: [
        { id: 'crm', file: 'crm.csv', grants: true },
        { id: 'esp', file: 'esp.csv', grants: true, purposes: { news: 'newsletter' } },
      ],
      logLevel: 'info',
    }),
  );
  return { ws, config };
}

/**
 * Start `plan --full` and SIGKILL it `delayMs` after the `after`-th "pull finished" log line, or
 * let the store kill itself inside its absorb transaction (`crash`: after moving observations, or
 * after moving records, before the commit).
 */
function planAndKill(config: string, after: number, delayMs: number, crash?: 'observations' | 'records'): Promise<NodeJS.Signals | null> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(['--config', config, 'plan', '--full', '--json'], crash === undefined ? {} : { env: { CONSENTD_TEST_CRASH_IN_ABSORB: crash } });
    let finished = 0;
    let buf = '';
    child.stdout?.resume();
    const kill = (): void => {
      if (crash === undefined) setTimeout(() => child.kill('SIGKILL'), delayMs);
    };
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.includes('"msg":"pull finished"') && ++finished === after) kill();
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('plan did not reach the kill point'));
    }, 60_000);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal);
    });
  });
}

interface Outcome {
  changes: string[];
  subjects: number;
  observations: string[];
  records: Array<{ connector_id: string; record_id: string; subject: string; snapshot: string; last_seen_run: number | null }>;
  logs: number;
}

async function planToEnd(ws: Workspace, config: string): Promise<Outcome> {
  const plan = await runCli(['--config', config, 'plan', '--full', '--json', '--log-level', 'warn'], { timeoutMs: 60_000 });
  expect(plan.code).toBe(0);
  const changes = (JSON.parse(plan.stdout) as { changes: Array<{ key: string }> }).changes.map((c) => c.key).sort();
  const db = new Database(ws.path('data/consentd.db'), { readonly: true });
  try {
    const lastRun = db.prepare('SELECT max(id) FROM runs').pluck().get() as number;
    return {
      changes,
      subjects: db.prepare('SELECT count(*) FROM subjects').pluck().get() as number,
      observations: (db.prepare("SELECT subject || '/' || id || '/' || echo || '/' || json_remove(body, '$[12]') FROM observations ORDER BY 1").pluck().all() as string[]),
      // run ids differ between the two histories: compare whether the last pull (esp's) saw the record
      records: (db.prepare('SELECT connector_id, record_id, subject, snapshot, last_seen_run FROM records ORDER BY 1, 2').all() as Outcome['records']).map((r) => ({
        ...r,
        last_seen_run: r.last_seen_run === lastRun ? -1 : 0,
      })),
      logs: (db.prepare('SELECT (SELECT count(*) FROM obs_log) + (SELECT count(*) FROM rec_log)').pluck().get() as number),
    };
  } finally {
    db.close();
  }
}

describe('faults: kill -9 during a bulk load of a fresh store', () => {
  it('re-running the interrupted pull gives the store and the plan of an uninterrupted one', async () => {
    const clean = seed();
    const expected = await planToEnd(clean.ws, clean.config);
    expect(expected.changes.length).toBeGreaterThan(N / 2);
    expect(expected.logs).toBe(0);

    const { ws, config } = seed();
    // during the second pull (the first one's rows wait in the logs), then twice inside the bulk
    // absorb (which then holds the logs of three pulls of each system), then after it
    for (const [after, delay, crash] of [
      [1, 150, undefined],
      [0, 0, 'observations'],
      [0, 0, 'records'],
      [2, 300, undefined],
    ] as const) {
      expect(await planAndKill(config, after, delay, crash)).toBe('SIGKILL');
    }
    const got = await planToEnd(ws, config);
    expect(got.logs).toBe(0);
    expect(got.subjects).toBe(expected.subjects);
    expect(got.observations).toEqual(expected.observations);
    // last_seen_run is the same run rank (the last pull) for every record in both
    expect(got.records).toEqual(expected.records);
    expect(got.changes).toEqual(expected.changes);
  });
});

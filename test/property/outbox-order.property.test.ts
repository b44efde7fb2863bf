/**
 * The outbox never lets an older change overwrite a newer one, and never loses the newest.
 * Random interleavings of full reconciles (queued in batches when the store may), instant
 * statements (a webhook's opt-out, the high lane), claims, pushes that succeed, fail for now or
 * fail for good, and crashes (before or after the push reached the system), over three people
 * with one target each, on a real SQLite store. One claim is in flight at a time, as a connector
 * with concurrency 1 (a CSV file) works.
 * - Order: no change is pushed after a newer change for the same target was pushed.
 * - Nothing lost: once drained, each target holds the newest value committed for it, unless a
 *   change with that value is in the dead-letter list (a permanent failure, visible).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/index.js';
import type { SqliteStore } from '../../src/store/sqlite/index.js';
import type { OutboxItem } from '../../src/store/store.js';
import { change, decision, tempStore } from '../unit/store-helpers.js';

const SUBJECTS = ['s0@x.io', 's1@x.io', 's2@x.io'] as const;
/** Runs per test (RUNS=10000 for a longer search). */
const RUNS = Number(process.env.RUNS ?? 300);
type Value = 'granted' | 'denied';

/** The observation that decided a change: from a small set, so that the same change (key) is decided again. */
type By = 'obs-a' | 'obs-b' | 'obs-c';
const byArb = fc.constantFrom<By>('obs-a', 'obs-b', 'obs-c');

type Step =
  | { kind: 'full'; who: number[]; value: Value; by: By }
  | { kind: 'instant'; who: number; value: Value; by: By }
  | { kind: 'claim'; limit: number }
  | { kind: 'settle'; outcome: 'ok' | 'retry' | 'kill' }
  | { kind: 'crash'; pushed: boolean };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('full' as const), who: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }), value: fc.constantFrom<Value>('granted', 'denied'), by: byArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('instant' as const), who: fc.integer({ min: 0, max: 2 }), value: fc.constantFrom<Value>('granted', 'denied'), by: byArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('claim' as const), limit: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('settle' as const), outcome: fc.constantFrom('ok' as const, 'ok' as const, 'retry' as const, 'kill' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), pushed: fc.boolean() }) },
);

/** `committed`: the latest commit of each change key (the same change decided again is a new decision). */
interface Run {
  store: SqliteStore;
  committed: Map<string, number>;
  newest: Map<string, { value: Value; order: number }>;
  pushed: Map<string, { value: Value; order: number }>;
  violations: string[];
  inFlight: OutboxItem[];
  n: number;
}

function commitChange(run: Run, subject: string, value: Value, by: By): Change {
  const c = change(subject, { target: value, rule: value === 'denied' ? 'R1-denial-sticky' : 'R1-later-explicit-grant', decidedBy: by });
  run.committed.set(c.key, ++run.n);
  run.newest.set(subject, { value, order: run.n });
  return c;
}

function push(run: Run, item: OutboxItem): void {
  const order = run.committed.get(item.change.key) as number;
  const last = run.pushed.get(item.change.subject);
  if (last !== undefined && last.order > order) run.violations.push(`${item.change.subject}: change #${order} (${String(item.change.target)}) pushed after #${last.order} (${last.value})`);
  if (last === undefined || last.order < order) run.pushed.set(item.change.subject, { value: item.change.target as Value, order });
}

async function play(steps: readonly Step[], reopen: () => SqliteStore, first: SqliteStore): Promise<Run> {
  const run: Run = { store: first, committed: new Map(), newest: new Map(), pushed: new Map(), violations: [], inFlight: [], n: 0 };
  const far = Date.now() + 365 * 24 * 3600 * 1000;
  for (const step of steps) {
    const { store } = run;
    if (step.kind === 'full') {
      const results = step.who.map((i) => {
        const subject = SUBJECTS[i] as string;
        return { subject, decision: decision(subject, step.value), changes: [commitChange(run, subject, step.value, step.by)] };
      });
      await store.commitReconcile(results, 'normal', { bulk: true });
    } else if (step.kind === 'instant') {
      const subject = SUBJECTS[step.who] as string;
      await store.commitReconcile([{ subject, decision: decision(subject, step.value), changes: [commitChange(run, subject, step.value, step.by)] }], 'high');
    } else if (step.kind === 'claim') {
      if (run.inFlight.length === 0) run.inFlight = await store.claimOutbox('crm', step.limit, far);
    } else if (step.kind === 'settle') {
      const item = run.inFlight.shift();
      if (item === undefined) continue;
      if (step.outcome === 'ok') {
        push(run, item);
        await store.completeOutbox([item.id], []);
      } else if (step.outcome === 'retry') {
        await store.retryOutbox(item.id, 0, 'HTTP 503');
      } else {
        await store.killOutbox(item.id, 'HTTP 400');
      }
    } else {
      if (step.pushed) for (const item of run.inFlight) push(run, item);
      run.inFlight = [];
      await store.close();
      run.store = reopen();
      await run.store.requeueInFlight();
    }
  }
  // Drain: the pushes in flight succeed, then everything still queued is claimed and pushed.
  for (const item of run.inFlight.splice(0)) {
    push(run, item);
    await run.store.completeOutbox([item.id], []);
  }
  for (let rounds = 0; rounds < 100; rounds++) {
    const items = await run.store.claimOutbox('crm', 3, far);
    if (items.length === 0) break;
    for (const item of items) push(run, item);
    await run.store.completeOutbox(
      items.map((i) => i.id),
      [],
    );
  }
  return run;
}

describe('outbox order (property)', () => {
  it('never pushes an older change after a newer one for the same target, and never loses the newest', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 30 }), async (steps) => {
        // One store per run, closed and deleted at its end (thousands of runs).
        const t = tempStore();
        try {
          const run = await play(steps, () => t.reopen(), t.store);
          expect(run.violations).toEqual([]);
          expect(await run.store.outboxDepth()).toEqual({});
          const dead = (await run.store.listDeadLetters(1000)).map((d) => `${d.change.subject}|${String(d.change.target)}`);
          for (const [subject, newest] of run.newest) {
            const landed = run.pushed.get(subject)?.value;
            if (landed !== newest.value) expect(dead, `${subject}: newest ${newest.value} (#${newest.order}) never landed (last pushed: ${landed ?? 'nothing'})`).toContain(`${subject}|${newest.value}`);
          }
        } finally {
          await t.cleanup();
        }
      }),
      { numRuns: RUNS },
    );
  }, Math.max(120_000, RUNS * 30));
});

import type { Change } from '../model/index.js';
import type { Engine } from './context.js';
import { planPages, type ReconcileOptions } from './reconcile.js';

/** Change label for summaries: "set_consent:denied", "suppress", "erase". */
export function changeLabel(c: Change): string {
  return c.op === 'set_consent' ? `set_consent:${c.target ?? 'none'}` : c.op;
}

export interface SystemPlan {
  changes: number;
  /** changeLabel -> count. */
  byOp: Record<string, number>;
  /** Distinct records touched. */
  records: number;
}

export interface PlanReport {
  subjects: number;
  changes: number;
  erasures: number;
  bySystem: Record<string, SystemPlan>;
}

/**
 * Dry run of reconcile: decide every dirty subject and plan its changes, writing nothing (no
 * decision saved, no outbox row, dirty flags left as they are). Plans come from the same pages as
 * a reconcile's (a worker thread for a large store), and each change is handed to `onChange` as it
 * is planned, so memory stays bounded by a few pages of subjects.
 */
export async function planReport(engine: Engine, onChange?: (c: Change) => void | Promise<void>, opts: ReconcileOptions = {}): Promise<PlanReport> {
  const report: PlanReport = { subjects: 0, changes: 0, erasures: 0, bySystem: {} };
  for (const c of engine.connectors) report.bySystem[c.id] = { changes: 0, byOp: {}, records: 0 };
  const pages = await planPages(engine, undefined, opts);
  try {
    for (;;) {
      const page = await pages.next();
      if (page.length === 0) break;
      for (const plan of page) {
        report.subjects++;
        if (plan.erasure !== undefined) report.erasures++;
        const touched = new Set<string>();
        for (const c of plan.changes) {
          const sys = (report.bySystem[c.connectorId] ??= { changes: 0, byOp: {}, records: 0 });
          sys.changes++;
          report.changes++;
          const label = changeLabel(c);
          sys.byOp[label] = (sys.byOp[label] ?? 0) + 1;
          const rk = `${c.connectorId}\u0000${c.recordId}`;
          if (!touched.has(rk)) {
            touched.add(rk);
            sys.records++;
          }
          if (onChange) await onChange(c);
        }
      }
      engine.progress?.({ phase: 'reconcile', connectorId: null, counts: { subjects: report.subjects, changes: report.changes } });
    }
  } finally {
    await pages.close();
  }
  return report;
}

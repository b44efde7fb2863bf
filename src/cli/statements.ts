import type { StatementResult } from '../engine/statements.js';
import { out } from './runtime.js';

/** What optout / grant / erase print. */
export function printStatement(verb: string, r: StatementResult): void {
  out.line(`${verb} ${r.subject}: ${r.added.length > 0 ? 'recorded' : 'already recorded'}`);
  const fixes = Object.entries(r.reconcile.byConnector).filter(([, n]) => n > 0);
  if (r.reconcile.erased > 0) out.line('erased from the store; a salted-hash tombstone and the audit fact are kept');
  if (fixes.length === 0) out.line('no system needs a change');
  else out.line(`queued (high priority): ${fixes.map(([id, n]) => `${id}=${n}`).join(' ')}; run \`consentd apply --no-pull\` (or let the daemon) to push`);
}

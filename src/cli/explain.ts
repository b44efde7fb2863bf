import type { Command } from 'commander';
import { subjectHash, type Observation } from '../model/index.js';
import { ECHO_TEXT, decide, explainDecision } from '../policy/index.js';
import { emailArg } from './args.js';
import { out, withRuntime, type GlobalOptions } from './runtime.js';

function describe(o: Observation): string {
  const what = o.kind === 'consent' ? `${o.state} (${o.strength})` : o.kind === 'suppression' ? `suppressed: ${o.reason ?? 'blocked'}` : 'erasure requested';
  const extras = [o.reference ? `ref ${o.reference}` : null, o.evidence ? `evidence ${JSON.stringify(o.evidence)}` : null].filter((x) => x !== null);
  return `${o.statedAt ?? '(no time)'}  ${o.source}  ${o.channel}:${o.purpose}  ${what}  via ${o.how}${extras.length > 0 ? `  ${extras.join(', ')}` : ''}  [${o.id}]${o.echo === true ? `  ${ECHO_TEXT}` : ''}`;
}

/** `consentd explain EMAIL [--json]`: every observation, the winning one and the rule, per scope. */
export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('show every observation about a person, the canonical state and the rule that decided it')
    .argument('<email>', 'the person')
    .option('--json', 'print as JSON')
    .action(async (email: string, opts: { json?: boolean }, cmd: Command) => {
      const subject = emailArg(email);
      await withRuntime(cmd.optsWithGlobals<GlobalOptions>(), async (rt) => {
        const state = await rt.store.subjectState(subject);
        const erased = await rt.store.isTombstoned(subjectHash(subject, rt.config.salt));
        const decision = decide(subject, state.observations, rt.engine.policyOptions());
        const explanation = explainDecision(decision, state.observations);
        const observations = [...state.observations].sort((a, b) => (a.observedAt < b.observedAt ? -1 : a.observedAt > b.observedAt ? 1 : a.id < b.id ? -1 : 1));
        if (opts.json === true) {
          out.line(JSON.stringify({ subject, erased, observations, records: state.records, explanation }, null, 2));
          return;
        }
        out.line(`${subject}`);
        if (erased && observations.length === 0) {
          out.line('  erased: only a salted-hash tombstone and the audit fact are kept about this person (rule 6)');
          return;
        }
        const echoes = observations.filter((o) => o.echo === true).length;
        out.line(`\nobservations (${observations.length}${echoes > 0 ? `, of which ${echoes} echo(es) ignored (rule 10)` : ''}):`);
        if (observations.length === 0) out.line('  none: consentd has never seen this address');
        for (const o of observations) out.line(`  ${describe(o)}`);
        if (explanation.erasureRequested) out.line('\nerasure requested: the person is erased on the next reconcile (rule 6)');
        out.line('\npermissions:');
        if (explanation.permissions.length === 0) out.line('  none: unknown everywhere (no evidence; absence is not consent)');
        for (const p of explanation.permissions) {
          out.line(`  ${p.channel}:${p.purpose}  ${p.state.toUpperCase()}${p.stale ? ' (stale)' : ''}  rule ${p.rule}`);
          out.line(`    ${p.text}`);
          out.line(`    winner: ${p.decidedBy ? describe(p.decidedBy) : 'none'}`);
        }
        if (explanation.suppressions.length > 0) {
          out.line('\nsuppressions:');
          for (const s of explanation.suppressions) {
            out.line(`  ${s.channel}  SUPPRESSED (${s.reason})`);
            out.line(`    ${s.text}`);
            out.line(`    winner: ${s.decidedBy ? describe(s.decidedBy) : 'none'}`);
          }
        }
        if (state.records.length > 0) {
          out.line(`\nrecords (${state.records.length}):`);
          for (const r of state.records) {
            const consent = Object.entries(r.consent).map(([k, v]) => `${k}=${v}`);
            const supp = Object.entries(r.suppressed).filter(([, v]) => v).map(([k]) => `${k}=suppressed`);
            out.line(`  ${r.connectorId} ${r.recordId}: ${[...consent, ...supp].join(' ') || '(says nothing)'}`);
          }
        }
      });
    });
}

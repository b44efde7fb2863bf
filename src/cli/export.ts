import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { stringify } from 'csv-stringify/sync';
import { UsageError } from '../errors.js';
import { withRuntime, type GlobalOptions } from './runtime.js';

const COLUMNS = ['type', 'id', 'subject', 'source', 'record_id', 'kind', 'channel', 'purpose', 'state', 'strength', 'stated_at', 'observed_at', 'how', 'reference', 'evidence', 'reason', 'subject_hash', 'erased_at'] as const;

async function write(stream: Writable, s: string): Promise<void> {
  if (!stream.write(s)) await once(stream, 'drain');
}

/**
 * `consentd export [--format csv|json] [--out FILE]`: the audit history, streamed: every
 * observation of the ledger (observedAt order), then every erasure fact. json = one JSON object
 * per line, with a "type" field.
 */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description('stream the audit history (observations ledger and erasure facts)')
    .option('--format <format>', 'csv | json (one object per line)', 'json')
    .option('--out <file>', 'write to a file instead of stdout')
    .action(async (opts: { format: string; out?: string }, cmd: Command) => {
      if (opts.format !== 'csv' && opts.format !== 'json') throw new UsageError(`--format must be csv or json, got ${JSON.stringify(opts.format)}`);
      const csv = opts.format === 'csv';
      await withRuntime(cmd.optsWithGlobals<GlobalOptions>(), async (rt) => {
        const stream: Writable = opts.out === undefined ? process.stdout : createWriteStream(opts.out);
        let n = 0;
        try {
          if (csv) await write(stream, stringify([[...COLUMNS]]));
          for await (const o of rt.store.iterateObservations()) {
            n++;
            await write(
              stream,
              csv
                ? stringify([['observation', o.id, o.subject, o.source, o.recordId ?? '', o.kind, o.channel, o.purpose, o.state, o.strength, o.statedAt ?? '', o.observedAt, o.how, o.reference ?? '', o.evidence ?? '', o.reason ?? '', '', '']])
                : `${JSON.stringify({ type: 'observation', ...o })}\n`,
            );
          }
          for await (const e of rt.store.iterateErasures()) {
            n++;
            await write(
              stream,
              csv
                ? stringify([['erasure', '', '', e.source, '', 'erasure', '', '', '', '', '', '', '', '', '', '', e.subjectHash, e.erasedAt]])
                : `${JSON.stringify({ type: 'erasure', ...e })}\n`,
            );
          }
        } finally {
          if (opts.out !== undefined) {
            stream.end();
            await once(stream, 'finish');
          }
        }
        rt.logger.info({ rows: n, out: opts.out ?? 'stdout' }, 'export finished');
      });
    });
}

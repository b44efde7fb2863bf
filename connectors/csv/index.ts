import { constants } from 'node:fs';
import { access, copyFile, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { defineConnector, oneAtATime } from '../../src/connectors/contract.js';
import type { CheckResult, Connector, ConnectorCapabilities, ConnectorContext, OffThreadPull, PullPage, PushResult } from '../../src/connectors/contract.js';
import type { Change } from '../../src/model/types.js';
import { ALL_PURPOSES } from '../../src/model/types.js';
import { COLUMNS, parseHeader } from './mapping.js';
import { CsvError, scanCsv } from './parse.js';
import { PULL_ENTRY, csvRowContext, pullCsv, type CsvPullArgs } from './pull-entry.js';
import { csvSettings } from './settings.js';
import type { CsvSettings } from './settings.js';
import { rewriteCsv } from './write.js';
import type { FileHashes, FsOps } from './write.js';

export { csvSettings } from './settings.js';
export type { CsvSettings } from './settings.js';

/**
 * A consent / suppression list file (legacy suppression lists, systems without an API).
 * Columns: email, channel, purpose, state, stated_at, evidence (synonyms accepted, see
 * mapping.ts). Pull is always a full read, streamed; push rewrites the file atomically.
 */
export const csvConnector = defineConnector({
  kind: 'csv',
  configSchema: csvSettings,
  create: (settings, ctx) => createCsvConnector(settings, ctx),
});

export interface CsvConnectorOptions {
  /** Test hook passed to the rewrite (simulate a failed rename). */
  fs?: FsOps;
  now?: () => Date;
}

export function createCsvConnector(settings: CsvSettings, ctx: ConnectorContext, opts: CsvConnectorOptions = {}): Connector {
  const path = resolve(ctx.baseDir, settings.path);
  const copyFrom = settings.copyFrom === undefined ? undefined : resolve(ctx.baseDir, settings.copyFrom);
  const rowCtx = csvRowContext(settings);
  const { purposes } = rowCtx;
  const pullArgs: CsvPullArgs = { path, delimiter: settings.delimiter, connectorId: ctx.id, pageSize: settings.pageSize, purposes: settings.purposes, channels: settings.channels };

  const capabilities: ConnectorCapabilities = {
    consent: settings.channels.flatMap((channel) => [ALL_PURPOSES, ...purposes.mapped()].map((purpose) => ({ channel, purpose }))),
    suppression: [...settings.channels],
    pushGrants: true,
    erase: true,
    acceptsUnknownAddresses: true,
  };

  /** Seed the file from copyFrom the first time (never overwrites). */
  const ensureFile = async (): Promise<void> => {
    if (copyFrom === undefined) return;
    try {
      await stat(path);
    } catch {
      await mkdir(dirname(path), { recursive: true });
      await copyFile(copyFrom, path, constants.COPYFILE_EXCL).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      ctx.logger.info({ connector: ctx.id, path, copyFrom }, 'csv file seeded from copyFrom');
    }
  };

  // One rewrite at a time: a second push waits for the first (they would race on the file).
  // The record hashes of the file as the last rewrite left it (4 bytes a row): the next rewrite of
  // that same version copies the rows it does not change without hashing their addresses again.
  const hashes: { current: FileHashes | null } = { current: null };

  return {
    id: ctx.id,
    kind: 'csv',
    limits: { batchSize: settings.batchSize, requestsPerInterval: 1_000_000, intervalMs: 1_000, concurrency: 1 },
    capabilities,

    async *pull(_cursor: string | null): AsyncIterable<PullPage> {
      await ensureFile();
      yield* pullCsv(pullArgs);
    },

    // Parsing a large file is CPU work: the engine may run it on a worker thread (same pages).
    async pullOffThread(): Promise<OffThreadPull | null> {
      await ensureFile();
      const bytes = await stat(path).then(
        (s) => s.size,
        () => null,
      );
      // Missing or unreadable: the in-thread pull reports it.
      return bytes === null ? null : { module: PULL_ENTRY, args: pullArgs, bytes };
    },

    // One rewrite at a time: each reads the file the previous one wrote.
    push: oneAtATime(async (changes: Change[]): Promise<PushResult[]> => {
      await ensureFile();
      // The file changed without a new inode, size or times (or the hashes were wrong): say so.
      const onStaleHashes = (reason: string): void => ctx.logger.warn({ connector: ctx.id, path, reason }, 'kept row hashes did not match the file: rewritten reading every address');
      return rewriteCsv({ path, delimiter: settings.delimiter, connectorId: ctx.id, ctx: rowCtx, hashes, onStaleHashes, ...(opts.fs ? { fs: opts.fs } : {}), ...(opts.now ? { now: opts.now } : {}) }, changes);
    }),

    async check(): Promise<CheckResult> {
      const details: string[] = [];
      let ok = true;
      try {
        await ensureFile();
      } catch (e) {
        details.push(`cannot seed ${path} from ${copyFrom ?? '?'}: ${(e as Error).message}`);
        return { ok: false, details };
      }
      try {
        await access(path, constants.R_OK);
        const s = await stat(path);
        details.push(`file ${path} is readable (${s.size} bytes)`);
      } catch (e) {
        return { ok: false, details: [...details, `file ${path} is not readable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`] };
      }
      try {
        await access(dirname(path), constants.W_OK | constants.X_OK);
        details.push(`directory ${dirname(path)} is writable (atomic rewrites possible)`);
      } catch {
        ok = false;
        details.push(`directory ${dirname(path)} is not writable: push cannot rewrite the file`);
      }
      try {
        const first = await firstRecord(path, settings.delimiter);
        if (!first) {
          ok = false;
          details.push('the file is empty (no header row)');
        } else {
          const h = parseHeader(first);
          if (!h.ok) {
            ok = false;
            details.push(`header not recognized: ${h.reason}`);
          } else {
            const present = COLUMNS.filter((c) => h.columns[c] !== undefined).map((c) => `${c}="${first[h.columns[c] as number] ?? ''}"`);
            const absent = COLUMNS.filter((c) => h.columns[c] === undefined);
            details.push(`header recognized: ${present.join(', ')}`);
            if (absent.length > 0) details.push(`optional columns absent: ${absent.join(', ')} (channel -> email, purpose -> *, no stated_at/evidence -> grants are implicit)`);
          }
        }
      } catch (e) {
        ok = false;
        details.push(e instanceof CsvError ? e.message : `cannot parse: ${(e as Error).message}`);
      }
      const mapped = Object.entries(settings.purposes).map(([n, c]) => `"${n}" -> ${c}`);
      details.push(mapped.length > 0 ? `purposes mapped: ${mapped.join(', ')}` : 'no purposes mapped: rows can only state "*"');
      return { ok, details };
    },
  };
}

async function firstRecord(path: string, delimiter: string): Promise<string[] | undefined> {
  for await (const rec of scanCsv(path, delimiter)) {
    if (rec.type === 'record') return rec.fields;
    return undefined;
  }
  return undefined;
}

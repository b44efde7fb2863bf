import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { Transform } from 'node:stream';
import { parse } from 'csv-parse';
import type { ObservationInput } from '../../src/model/types.js';
import type { PullPage, PullReject } from '../../src/connectors/contract.js';
import { SnapshotBuilder, interpretRow, parseHeader, toObservationInput } from './mapping.js';
import type { HeaderMap, RowContext } from './mapping.js';
import { StaleHashes, Unsupported, fastRecords } from './scan.js';
import type { FastCopy, FastHashes, FastRecord, FastSelect } from './scan.js';

export class CsvError extends Error {
  constructor(
    readonly code: 'CSV_FILE_MISSING' | 'CSV_BAD_HEADER' | 'CSV_SYNTAX' | 'CSV_IO',
    message: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

/** One record of the file with its exact bytes, so a rewrite can copy untouched rows verbatim. */
export interface CsvRecord {
  type: 'record';
  /** 0 for the header. */
  index: number;
  /** 1-based line the record starts on. */
  line: number;
  fields: string[];
  /** Bytes from the end of the previous record: skipped blank lines, the record, its line ending. */
  raw: Buffer;
  /** Length of `raw`'s leading blank lines (kept when a row is rewritten). */
  leading: number;
  /** The record ends with a line ending (false only for a last line without one). */
  terminated: boolean;
}
/** Bytes after the last record (trailing blank lines). */
export interface CsvTail {
  type: 'tail';
  raw: Buffer;
}
/** Consecutive records a `select` did not want, as their bytes (see scanBatches). */
export interface CsvCopy {
  type: 'copy';
  raw: Buffer;
  /** One past the index of the last record in the range. */
  endIndex: number;
}

const NL = 0x0a;
const CR = 0x0d;

function countNewlines(b: Buffer, end = b.length): number {
  let n = 0;
  for (let i = b.indexOf(NL); i !== -1 && i < end; i = b.indexOf(NL, i + 1)) n++;
  return n;
}

/**
 * Stream a CSV file record by record (never the whole file in memory). Plain files (no quote
 * character) are read by the fast reader of scan.ts; any other file by csv-parse
 * (scanCsvWithParser), which is what defines the format: the fast reader is exact where it runs.
 */
export async function* scanCsv(path: string, delimiter: string): AsyncGenerator<CsvRecord | CsvTail> {
  for await (const batch of scanBatches(path, delimiter, true)) for (const r of batch) if (r.type !== 'copy') yield r;
}

/** A record without its bytes (the pull needs only the fields). */
export interface CsvRow {
  index: number;
  line: number;
  fields: string[];
}

/** Like scanCsv, records only, without their raw bytes. */
export async function* scanRows(path: string, delimiter: string): AsyncGenerator<CsvRow> {
  for await (const batch of scanBatches(path, delimiter, false)) for (const r of batch) if (r.type === 'record') yield r;
}

/**
 * scanCsv in batches (a chunk of the file at a time): one await per batch rather than per record.
 * `withRaw` false leaves `raw` empty. With `select` (see FastSelect), runs of records it does not
 * want may come as CsvCopy byte ranges instead (only from the fast reader: a caller must still
 * test the records it gets).
 */
export async function* scanBatches(path: string, delimiter: string, withRaw: boolean, select?: FastSelect, hashes?: FastHashes): AsyncGenerator<Array<CsvRecord | CsvTail | CsvCopy>> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError(path, e);
  }
  const empty = Buffer.alloc(0);
  let delivered = 0;
  try {
    try {
      const it = fastRecords(fh, delimiter, withRaw, undefined, select, hashes);
      for (;;) {
        const next = await it.next();
        if (next.done === true) {
          yield [{ type: 'tail', raw: next.value }];
          return;
        }
        const out: Array<CsvRecord | CsvCopy> = [];
        for (const r of next.value) {
          if ('copy' in r) out.push({ type: 'copy', raw: r.raw, endIndex: r.endIndex });
          else out.push({ type: 'record', index: r.index, line: r.line, fields: r.fields, raw: r.raw ?? empty, leading: r.leading, terminated: r.terminated });
        }
        yield out;
        delivered = lastIndex(next.value, delivered);
      }
    } catch (e) {
      if (e instanceof StaleHashes) throw e;
      if (!(e instanceof Unsupported)) throw ioError(path, e);
    }
    // Not a plain file: csv-parse from the start, over the same open file, past what was delivered.
    let out: Array<CsvRecord | CsvTail> = [];
    for await (const r of scanCsvWithParser(path, delimiter, fh)) {
      if (r.type === 'record' && r.index < delivered) continue;
      out.push(r);
      if (out.length >= 1000) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Records delivered so far: one past the last record index of a batch (copied ones count too). */
function lastIndex(batch: ReadonlyArray<FastRecord | FastCopy>, before: number): number {
  const r = batch[batch.length - 1];
  if (r === undefined) return before;
  return 'copy' in r ? r.endIndex : r.index + 1;
}

function ioError(path: string, e: unknown): CsvError {
  if (e instanceof CsvError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return new CsvError('CSV_FILE_MISSING', `${path} does not exist`);
  return new CsvError('CSV_IO', `${path}: ${err.message}`);
}

/**
 * Stream a CSV file record by record with csv-parse (never the whole file in memory). A tap in
 * front of the parser keeps the bytes not yet attributed to a record; csv-parse's `info.bytes`
 * (end offset of each record, in bytes, BOM included) cuts them into exact raw slices.
 * Lenient where legacy exports are sloppy (ragged rows, a stray quote inside an unquoted
 * field); an unterminated quoted field is a CSV_SYNTAX error naming the line.
 */
export async function* scanCsvWithParser(path: string, delimiter: string, fh?: FileHandle): AsyncGenerator<CsvRecord | CsvTail> {
  const chunks: Buffer[] = [];
  let chunksStart = 0; // absolute offset of chunks[0]
  let total = 0;
  let prev = 0; // end offset of the previous record
  let line = 1; // line number at offset `prev`

  const take = (end: number): Buffer => {
    while (chunks.length > 0 && chunksStart + (chunks[0] as Buffer).length <= prev) chunksStart += (chunks.shift() as Buffer).length;
    const parts: Buffer[] = [];
    let at = chunksStart;
    for (const c of chunks) {
      const from = Math.max(prev, at);
      const to = Math.min(end, at + c.length);
      if (to > from) parts.push(c.subarray(from - at, to - at));
      at += c.length;
      if (at >= end) break;
    }
    prev = end;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  };

  const source = fh === undefined ? createReadStream(path) : createReadStream(path, { fd: fh, start: 0, autoClose: false });
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      total += chunk.length;
      cb(null, chunk);
    },
  });
  const parser = parse({ delimiter, bom: true, relax_column_count: true, relax_quotes: true, skip_empty_lines: true, info: true });
  source.on('error', (e) => parser.destroy(e));
  tap.on('error', (e) => parser.destroy(e));
  source.pipe(tap).pipe(parser);

  let index = 0;
  try {
    for await (const item of parser as AsyncIterable<{ record: string[]; info: { bytes: number } }>) {
      const raw = take(item.info.bytes);
      let leading = 0;
      while (leading < raw.length && (raw[leading] === NL || raw[leading] === CR)) leading++;
      const startLine = line + countNewlines(raw, leading);
      line += countNewlines(raw);
      const last = raw[raw.length - 1];
      yield { type: 'record', index: index++, line: startLine, fields: item.record, raw, leading, terminated: last === NL || last === CR };
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { lines?: number };
    if (err.code === 'ENOENT') throw new CsvError('CSV_FILE_MISSING', `${path} does not exist`);
    if (typeof err.code === 'string' && err.code.startsWith('CSV_')) throw new CsvError('CSV_SYNTAX', `${path}:${err.lines ?? '?'}: ${err.message}`, err.lines);
    throw new CsvError('CSV_IO', `${path}: ${err.message}`);
  } finally {
    source.destroy();
  }
  yield { type: 'tail', raw: take(total) };
}

/** The file's identity for the cursor: modification time and size. */
export async function fileVersion(path: string): Promise<string> {
  const s = await stat(path);
  return `mtime=${s.mtimeMs};size=${s.size}`;
}

export interface PullOptions {
  path: string;
  delimiter: string;
  connectorId: string;
  pageSize: number;
  ctx: Omit<RowContext, 'columns'>;
}

/**
 * A full pull of the file in pages of about `pageSize` rows. A page is cut only between two
 * subjects (a subject's adjacent rows stay in one page), unless a single subject runs past twice
 * the page size. The cursor is null on every page but the last, which carries the file's
 * version (mtime + size) as read at the start: CSV always does a full pull; the cursor only
 * records which version of the file the store has seen.
 */
export async function* pullPages(opts: PullOptions): AsyncGenerator<PullPage> {
  const version = await fileVersion(opts.path).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'ENOENT' ? new CsvError('CSV_FILE_MISSING', `${opts.path} does not exist`) : new CsvError('CSV_IO', `${opts.path}: ${e.message}`);
  });
  const name = basename(opts.path);
  let columns: HeaderMap | undefined;
  let rowCtx: RowContext | undefined;

  let observations: ObservationInput[] = [];
  let rejects: PullReject[] = [];
  let snapshots = new SnapshotBuilder(opts.connectorId);
  let rows = 0;
  let lastSubject: string | null = null;
  let pending: PullPage | null = null;

  const cut = (): PullPage => {
    const page: PullPage = { records: snapshots.snapshots(), observations, cursor: null, rejects };
    observations = [];
    rejects = [];
    snapshots = new SnapshotBuilder(opts.connectorId);
    rows = 0;
    return page;
  };

  for await (const batch of scanBatches(opts.path, opts.delimiter, false)) for (const rec of batch) {
    if (rec.type !== 'record') break; // the tail (no copies without a select)
    if (rec.index === 0) {
      const h = parseHeader(rec.fields);
      if (!h.ok) throw new CsvError('CSV_BAD_HEADER', `${opts.path}:${rec.line}: ${h.reason}`, rec.line);
      columns = h.columns;
      continue;
    }
    const r = interpretRow(rec.fields, rec.line, rowCtx ?? (rowCtx = { ...opts.ctx, columns: columns as HeaderMap }));
    if (r.ok === 'blank') continue;
    const subject = r.ok ? r.fact.email : r.email;
    if ((rows >= opts.pageSize && subject !== lastSubject) || rows >= 2 * opts.pageSize) {
      if (pending) yield pending;
      pending = cut();
    }
    rows++;
    lastSubject = subject;
    if (r.ok !== true) {
      rejects.push({ where: `${opts.path}:${rec.line}`, reason: r.reason });
      continue;
    }
    // The reference names the file, not the line: a rewrite shifts lines, and a line number in the
    // observation id would make every re-pull after a push look like new statements.
    const obs = toObservationInput(r.fact, opts.connectorId, name);
    if (obs) observations.push(obs);
    snapshots.add(r.fact);
  }
  if (columns === undefined) throw new CsvError('CSV_BAD_HEADER', `${opts.path}: the file is empty (no header row)`);
  if (pending) {
    if (rows === 0) {
      pending.cursor = version;
      yield pending;
      return;
    }
    yield pending;
  }
  const last = cut();
  last.cursor = version;
  yield last;
}

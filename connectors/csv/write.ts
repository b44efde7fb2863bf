import { randomBytes } from 'node:crypto';
import { open, rename as fsRename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Change, Channel, RecordSnapshot } from '../../src/model/types.js';
import { ALL_PURPOSES } from '../../src/model/types.js';
import type { PushResult } from '../../src/connectors/contract.js';
import { SnapshotBuilder, SUPPRESSION_MARKER, WRITE_WORDS, interpretRow, parseHeader } from './mapping.js';
import type { HeaderMap, RowContext, RowFact } from './mapping.js';
import { CsvError, scanBatches } from './parse.js';
import { NOT_ASCII, RecordHashes, StaleHashes, cellHash, isAscii } from './scan.js';
import type { FastHashes } from './scan.js';
import { BufferedOut } from './buffered-out.js';

/*
 * push(): make the file agree with a batch of changes by rewriting it atomically.
 * The current file is streamed row by row into a temp file in the same directory; rows are
 * copied byte for byte unless a change applies to them:
 * - set_consent: every consent row of (email, channel, purpose) whose state differs from the
 *   target is rewritten (state "subscribed"/"unsubscribed", stated_at now, evidence
 *   "consentd:<rule>:<decidedBy>"); if the subject has no such row, one is added right after
 *   the subject's (first) run of adjacent rows, or appended if the file has none (a pull keeps
 *   a subject's adjacent rows in one page, hence in one snapshot).
 * - suppress: if the subject has no suppression row on the channel, a row is added (as above) with
 *   state "unsubscribed" and evidence "consentd:suppressed" (legacy readers see "do not send";
 *   on pull consentd reads it back as its own suppression marker, not as a denial). A file
 *   without an evidence column gets state "suppressed" instead.
 * - erase: every row of the subject is dropped (including malformed ones with its address).
 * Rows that already agree are left alone, so pushing the same change twice changes nothing.
 * Then: fsync the temp file, check the original did not change meanwhile (else `retry`), rename
 * over it, fsync the directory. A crash before the rename leaves the original intact. Memory is
 * bounded by the batch, not the file. If nothing would change, the file is not touched at all.
 */

/** File operations a test can replace (simulate a crash before the rename, a concurrent edit). */
export interface FsOps {
  rename?(from: string, to: string): Promise<void>;
  stat?(path: string): Promise<{ mtimeMs: number; ctimeMs: number; size: number; ino: number; mode: number }>;
}

export interface RewriteOptions {
  path: string;
  delimiter: string;
  connectorId: string;
  ctx: Omit<RowContext, 'columns'>;
  now?: () => Date;
  /** Test hook: simulate a crash between write and rename. */
  fs?: FsOps;
  /**
   * Where the connector keeps, between rewrites, the record hashes of the file as the last rewrite
   * left it (see RecordHashes): used while the file is that same version, replaced by each rewrite.
   */
  hashes?: { current: FileHashes | null };
  /** Told when kept hashes did not match the file (the rewrite then started over without them). */
  onStaleHashes?: (reason: string) => void;
}

/** The record hashes of one version of a file (its inode, size, modification and change times). */
export interface FileHashes {
  version: FileVersion;
  hashes: RecordHashes;
}
/** A file's version as stat tells it: ctime cannot be set back by a writer (utimes sets mtime only). */
type FileVersion = { ino: number; size: number; mtimeMs: number; ctimeMs: number };
const versionOf = (s: FileVersion): FileVersion => ({ ino: s.ino, size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs });
const sameVersion = (a: FileVersion, b: FileVersion): boolean => a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

interface ScopeTarget {
  target: 'granted' | 'denied';
  evidence: string;
  matched: boolean;
}

const PERMANENT_IO = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'EISDIR', 'ENOTDIR']);

const scope = (email: string, channel: string, purpose: string): string => `${email}\u0000${channel}\u0000${purpose}`;

export async function rewriteCsv(opts: RewriteOptions, changes: readonly Change[]): Promise<PushResult[]> {
  try {
    return await rewriteOnce(opts, changes, true);
  } catch (e) {
    // The kept hashes did not match the file: the rewrite so far is dropped and done again, hashing.
    if (e instanceof StaleHashes) {
      opts.onStaleHashes?.(e.message);
      return rewriteOnce(opts, changes, false);
    }
    throw e;
  }
}

async function rewriteOnce(opts: RewriteOptions, changes: readonly Change[], useKept: boolean): Promise<PushResult[]> {
  const now = (opts.now ?? (() => new Date()))().toISOString();
  const results: Array<PushResult | undefined> = changes.map(() => undefined);
  const { purposes, channels } = opts.ctx;

  const erased = new Set<string>();
  const consentTargets = new Map<string, ScopeTarget>();
  /** Change index -> its scope's target (shared by the changes of one scope: the last one sets it). */
  const targetOf: Array<ScopeTarget | undefined> = [];
  const suppressTargets = new Map<string, { channel: Channel; matched: boolean }>();
  const subjects = new Set<string>();
  /** Subject -> indexes of its changes (not erase), in batch order. */
  const changeIndexes = new Map<string, number[]>();
  const fail = (i: number, reason: string, code: string): void => {
    const c = changes[i] as Change;
    results[i] = { key: c.key, status: 'failed', reason, code };
  };

  changes.forEach((c, i) => {
    const email = c.recordId;
    if (!channels.has(c.channel)) return fail(i, `channel "${c.channel}" is not configured for this csv connector`, 'CSV_UNSUPPORTED_SCOPE');
    if (c.op === 'erase') {
      erased.add(email);
      return;
    }
    subjects.add(email);
    const idx = changeIndexes.get(email);
    if (idx === undefined) changeIndexes.set(email, [i]);
    else idx.push(i);
    if (c.op === 'suppress') {
      suppressTargets.set(`${email}\u0000${c.channel}`, { channel: c.channel, matched: false });
      return;
    }
    if (c.target === null) return fail(i, 'set_consent without a target', 'CSV_BAD_CHANGE');
    if (purposes.native(c.purpose) === undefined) return fail(i, `purpose "${c.purpose}" is not mapped in settings.purposes`, 'CSV_UNSUPPORTED_SCOPE');
    const k = scope(email, c.channel, c.purpose);
    const evidence = `consentd:${c.rule ?? 'unknown'}:${c.decidedBy ?? 'none'}`;
    let t = consentTargets.get(k);
    if (t === undefined) consentTargets.set(k, (t = { target: c.target, evidence, matched: false }));
    else Object.assign(t, { target: c.target, evidence });
    targetOf[i] = t;
  });
  const pending = (): number[] => {
    const out: number[] = [];
    for (let i = 0; i < changes.length; i++) if (results[i] === undefined) out.push(i);
    return out;
  };
  if (pending().length === 0) return results as PushResult[];

  const dir = dirname(opts.path);
  const tmp = join(dir, `.${basename(opts.path)}.consentd-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  let renamed = false;
  try {
    const statOf = opts.fs?.stat ?? stat;
    const before = await statOf(opts.path).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'ENOENT' ? new CsvError('CSV_FILE_MISSING', `${opts.path} does not exist`) : e;
    });
    fh = await open(tmp, 'wx', before.mode & 0o777);
    const out = new BufferedOut(fh);
    // The record hashes: of the file as read (`seen`, given `known` when kept for this version) and
    // of the file as written (`written`: copied ranges carry theirs over, written records get theirs).
    const kept = opts.hashes?.current ?? null;
    if (opts.hashes) opts.hashes.current = null;
    const hashes: FastHashes | undefined = opts.hashes && { seen: new RecordHashes(), known: useKept && kept !== null && sameVersion(kept.version, before) ? kept.hashes : null };
    const written = hashes && new RecordHashes();
    let nextIndex = 0;
    const snapshots = new SnapshotBuilder(opts.connectorId);
    let columns: HeaderMap | undefined;
    let width = 0;
    let eol = '\n';
    let dirty = false;

    const render = (fields: string[], terminated: boolean): Buffer => {
      const text = renderRecord(fields, opts.delimiter, eol);
      return Buffer.from(terminated ? text : text.slice(0, -eol.length));
    };

    // Rows for changes no existing row could take. They are written right after the subject's
    // run of adjacent rows (or at the end when the file has none): a pull cuts pages only between
    // subjects, so rows kept together are read back as one snapshot (rows appended at the end would
    // land in a later page, whose snapshot of the record would replace the first one).
    // Synchronous (rows are buffered; the loop flushes): an await per row cost more than the row.
    const append = (cols: HeaderMap, fact: RowFact, stateWord: string, evidence: string, purposeWord: string): void => {
      const fields: string[] = new Array<string>(width).fill('');
      fields[cols.email] = fact.email;
      fields[cols.state] = stateWord;
      if (cols.channel !== undefined) fields[cols.channel] = fact.channel;
      if (cols.purpose !== undefined) fields[cols.purpose] = purposeWord;
      if (cols.stated_at !== undefined) fields[cols.stated_at] = now;
      if (cols.evidence !== undefined) fields[cols.evidence] = evidence;
      if (out.lastByte !== 0x0a && out.lastByte !== -1) out.add(Buffer.from(eol));
      out.add(render(fields, true));
      written?.push(cellHash(fact.email));
      snapshots.add(fact);
      dirty = true;
    };
    const appendFor = (i: number, cols: HeaderMap): void => {
      const c = changes[i] as Change;
      if (results[i] !== undefined || erased.has(c.recordId) || c.op === 'erase') return;
      // Facts spelled out in full (an object spread here cost more than the rest of the row).
      if (c.op === 'set_consent' && c.target !== null) {
        const t = targetOf[i];
        if (!t || t.matched) return;
        t.matched = true;
        append(
          cols,
          { line: 0, email: c.recordId, kind: 'consent', channel: c.channel, purpose: c.purpose, state: t.target, strength: 'explicit', statedAt: now, evidence: t.evidence, reason: null },
          WRITE_WORDS[t.target],
          t.evidence,
          purposes.native(c.purpose) ?? ALL_PURPOSES,
        );
      } else if (c.op === 'suppress') {
        const s = suppressTargets.get(`${c.recordId}\u0000${c.channel}`);
        if (!s || s.matched) return;
        s.matched = true;
        const marker = cols.evidence !== undefined;
        append(
          cols,
          {
            line: 0,
            email: c.recordId,
            kind: marker ? 'marker' : 'suppression',
            channel: c.channel,
            purpose: ALL_PURPOSES,
            state: marker ? 'denied' : 'unknown',
            strength: 'explicit',
            statedAt: now,
            evidence: SUPPRESSION_MARKER,
            reason: null,
          },
          marker ? WRITE_WORDS.denied : WRITE_WORDS.suppressed,
          SUPPRESSION_MARKER,
          purposes.native(ALL_PURPOSES) ?? ALL_PURPOSES,
        );
      }
    };
    /** Subject of the current run of adjacent rows, when it has changes of this batch. */
    let runSubject: string | null = null;
    const enterRun = (email: string | null, cols: HeaderMap): void => {
      if (email === runSubject) return;
      if (runSubject !== null) for (const i of changeIndexes.get(runSubject) ?? []) appendFor(i, cols);
      runSubject = email !== null && changeIndexes.has(email) ? email : null;
    };

    // A row whose address is not in this batch is copied verbatim, so it need not be interpreted.
    // An ASCII address normalizes to its trimmed lower case (NFC is the identity on ASCII), so the
    // test is exact; anything else takes the full path. The reader applies the same test to skip
    // building such rows at all (they come as `copy` byte ranges).
    const addresses = new Set([...subjects, ...erased]);
    const copied = (quick: string): boolean => !addresses.has(quick) && isAscii(quick);
    const select = (header: readonly string[]): { column: number; addresses: ReadonlySet<string> } | null => {
      const h = parseHeader(header);
      return h.ok ? { column: h.columns.email, addresses } : null;
    };
    /** Write a row read from the file (as it was, or rewritten), with its address's hash. */
    const keep = (raw: Buffer, fields: readonly string[], cols: HeaderMap): void => {
      out.add(raw);
      written?.push(cellHash(fields[cols.email] ?? ''));
    };
    let rowCtx: RowContext | undefined;
    for await (const batch of scanBatches(opts.path, opts.delimiter, true, select, hashes)) {
      for (const rec of batch) {
        if (rec.type === 'tail') {
          out.add(rec.raw);
          break;
        }
        if (rec.type === 'copy') {
          if (runSubject !== null && columns !== undefined) enterRun(null, columns);
          out.add(rec.raw);
          if (hashes && written) written.copy(hashes.seen, nextIndex, rec.endIndex);
          nextIndex = rec.endIndex;
          continue;
        }
        nextIndex = rec.index + 1;
        if (rec.index === 0) {
          written?.push(NOT_ASCII);
          const h = parseHeader(rec.fields);
          if (!h.ok) throw new CsvError('CSV_BAD_HEADER', `${opts.path}:${rec.line}: ${h.reason}`, rec.line);
          columns = h.columns;
          width = h.width;
          eol = rec.raw.includes('\r\n') ? '\r\n' : '\n';
          checkColumns(columns, changes, results, fail);
          out.add(rec.raw);
          continue;
        }
        const cols = columns as HeaderMap;
        if (copied((rec.fields[cols.email] ?? '').trim().toLowerCase())) {
          if (runSubject !== null) enterRun(null, cols);
          keep(rec.raw, rec.fields, cols);
          continue;
        }
        const r = interpretRow(rec.fields, rec.line, rowCtx ?? (rowCtx = { ...opts.ctx, columns: cols }));
        const email = r.ok === true ? r.fact.email : r.ok === false ? r.email : null;
        enterRun(email, cols);
        if (email !== null && erased.has(email)) {
          dirty = true;
          continue;
        }
        if (r.ok !== true) {
          keep(rec.raw, rec.fields, cols);
          continue;
        }
        let fact: RowFact = r.fact;
        let raw = rec.raw;
        if (fact.kind === 'consent') {
          const t = consentTargets.get(scope(fact.email, fact.channel, fact.purpose));
          if (t) {
            t.matched = true;
            if (fact.state !== t.target) {
              const fields = [...rec.fields];
              while (fields.length < width) fields.push('');
              fields[cols.state] = WRITE_WORDS[t.target];
              if (cols.stated_at !== undefined) fields[cols.stated_at] = now;
              if (cols.evidence !== undefined) fields[cols.evidence] = t.evidence;
              raw = Buffer.concat([rec.raw.subarray(0, rec.leading), render(fields, rec.terminated)]);
              fact = { ...fact, state: t.target, statedAt: cols.stated_at !== undefined ? now : fact.statedAt };
              dirty = true;
            }
          }
        } else if (fact.kind === 'suppression' || fact.kind === 'marker') {
          const s = suppressTargets.get(`${fact.email}\u0000${fact.channel}`);
          if (s) s.matched = true;
        }
        if (subjects.has(fact.email)) snapshots.add(fact);
        // A rewritten row keeps its address cell.
        keep(raw, rec.fields, cols);
      }
      // One write per batch of the reader (a chunk of the file), not one per row.
      await out.flush();
    }
    if (columns === undefined) throw new CsvError('CSV_BAD_HEADER', `${opts.path}: the file is empty (no header row)`);
    // Rows for changes no existing row could take (subjects absent from the file, the last run).
    for (const i of pending()) {
      appendFor(i, columns);
      if (out.due) await out.flush();
    }

    await out.end();
    await fh.sync();
    const mine = opts.hashes ? await fh.stat() : null;
    await fh.close();
    fh = undefined;
    if (dirty) {
      const after = await statOf(opts.path);
      if (after.mtimeMs !== before.mtimeMs || after.size !== before.size || after.ino !== before.ino) {
        for (const i of pending()) results[i] = { key: (changes[i] as Change).key, status: 'retry', reason: `${opts.path} changed while it was being rewritten`, retryAfterMs: 1_000 };
        return results as PushResult[];
      }
      await (opts.fs?.rename ?? fsRename)(tmp, opts.path);
      renamed = true;
      await syncDir(dir);
      if (opts.hashes && mine !== null && hashes?.seen.complete === true && written) {
        // Kept only if the file now there is the one written (the rename changed its ctime).
        const now = await stat(opts.path);
        if (now.ino === mine.ino && now.size === mine.size && now.mtimeMs === mine.mtimeMs) opts.hashes.current = { version: versionOf(now), hashes: written.trim() };
      }
    } else if (opts.hashes && hashes?.seen.complete === true) {
      opts.hashes.current = { version: versionOf(before), hashes: hashes.seen.trim() };
    }
    // One snapshot per record, shared by its changes' results (read-only: the engine copies to apply).
    const snapshotOf = new Map<string, RecordSnapshot | undefined>();
    for (const i of pending()) {
      const c = changes[i] as Change;
      let snapshot: RecordSnapshot | undefined;
      if (c.op !== 'erase' && !erased.has(c.recordId)) {
        snapshot = snapshotOf.get(c.recordId);
        if (snapshot === undefined) snapshotOf.set(c.recordId, (snapshot = snapshots.get(c.recordId)));
      }
      results[i] = snapshot ? { key: c.key, status: 'ok', snapshot } : { key: c.key, status: 'ok' };
    }
    return results as PushResult[];
  } catch (e) {
    if (e instanceof StaleHashes) throw e;
    const err = e as NodeJS.ErrnoException;
    const permanent = e instanceof CsvError || (typeof err.code === 'string' && PERMANENT_IO.has(err.code));
    for (const i of pending()) {
      const key = (changes[i] as Change).key;
      results[i] = permanent
        ? { key, status: 'failed', reason: err.message, code: e instanceof CsvError ? e.code : (err.code ?? 'CSV_IO') }
        : { key, status: 'retry', reason: err.message };
    }
    return results as PushResult[];
  } finally {
    if (fh) await fh.close().catch(() => undefined);
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

/** csv-stringify's test: would `sep` appended after `v` be found starting inside `v`? */
const emitsSeparator = (v: string, sep: string): boolean => sep.length !== 0 && (v.includes(sep) || (sep.length > 1 && (v + sep).indexOf(sep) < v.length));

/**
 * One record exactly as csv-stringify's stringify([fields], { delimiter, record_delimiter: eol })
 * writes it (property-tested against it), without building a stringifier per row: a field is
 * quoted when it holds a quote (doubled), the delimiter or the line ending.
 */
export function renderRecord(fields: readonly string[], delimiter: string, eol: string): string {
  let out = '';
  for (let i = 0; i < fields.length; i++) {
    let v = fields[i] ?? '';
    if (v !== '') {
      const hasQuote = v.includes('"');
      const quoted = hasQuote || emitsSeparator(v, delimiter) || emitsSeparator(v, eol);
      if (hasQuote) v = v.replaceAll('"', '""');
      if (quoted) v = `"${v}"`;
    }
    out += v;
    if (i !== fields.length - 1) out += delimiter;
  }
  return out + eol;
}

/** A change the file's columns cannot express fails before anything is written. */
function checkColumns(cols: HeaderMap, changes: readonly Change[], results: ReadonlyArray<PushResult | undefined>, fail: (i: number, reason: string, code: string) => void): void {
  changes.forEach((c, i) => {
    if (results[i] !== undefined || c.op === 'erase') return;
    if (c.channel !== 'email' && cols.channel === undefined) fail(i, `the file has no channel column, so it cannot state channel "${c.channel}"`, 'CSV_UNSUPPORTED_SCOPE');
    else if (c.op === 'set_consent' && c.purpose !== ALL_PURPOSES && cols.purpose === undefined) fail(i, `the file has no purpose column, so it cannot state purpose "${c.purpose}"`, 'CSV_UNSUPPORTED_SCOPE');
  });
}

async function syncDir(dir: string): Promise<void> {
  let d: FileHandle | undefined;
  try {
    d = await open(dir, 'r');
    await d.sync();
  } catch {
    // Some platforms cannot fsync a directory; the rename itself is still atomic.
  } finally {
    await d?.close().catch(() => undefined);
  }
}

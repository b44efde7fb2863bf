import type { FileHandle } from 'node:fs/promises';

/*
 * A fast reader for the plain files almost every list export is: no quote character anywhere.
 * For such a file csv-parse (with the options scanCsv uses: bom, relax_column_count, relax_quotes,
 * skip_empty_lines) reduces to: skip a UTF-8 BOM; the first CR or LF decides the record
 * delimiter ("\r\n", "\n" or "\r", fixed from then on; any other CR or LF is data); records are
 * the non-empty runs between delimiters; fields are the record split on the field delimiter,
 * decoded as UTF-8. This module implements exactly that, on raw chunks (Buffer.indexOf, one
 * decode per record), and gives up (`Unsupported`) the moment the file is not that simple: a
 * quote byte, a UTF-16 BOM, or a delimiter that is not plain ASCII. The caller then re-reads
 * the file with csv-parse and skips the records already delivered, which csv-parse reads
 * identically (they precede the first quote). The equivalence is property-tested against
 * csv-parse (test/unit/csv-scan.test.ts).
 */

const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
/** Bytes read at a time: one batch of records (~5k rows of a typical list). */
const CHUNK = 1 << 18;
const UTF8_BOM = [0xef, 0xbb, 0xbf] as const;

/** The file is not one the fast reader handles (see above); nothing wrong with it. */
export class Unsupported extends Error {}

/** A record as the fast reader sees it; offsets are absolute in the file. */
export interface FastRecord {
  index: number;
  /** 1-based line the record starts on. */
  line: number;
  fields: string[];
  /** Where `raw` starts: the end of the previous record (blank lines before it belong to it). */
  rawStart: number;
  /** End of the record including its line ending. */
  rawEnd: number;
  /** The bytes [rawStart, rawEnd), only when asked for (`withRaw`). */
  raw: Buffer | null;
  leading: number;
  /** raw ends with CR or LF. */
  terminated: boolean;
}

/** Bytes of consecutive records the reader's `select` did not want, in one piece (raw bytes). */
export interface FastCopy {
  copy: true;
  raw: Buffer;
  /** One past the index of the last record in the range. */
  endIndex: number;
}

/**
 * Lets a caller skip the records it only copies (a rewrite): given the header's fields, the column
 * of the address and the addresses it wants, in their "quick" form (trimmed, lower-cased cell
 * text). A record whose quick address is plain ASCII and not one of them comes back inside a
 * FastCopy byte range instead of as a record. null: every record.
 */
export type FastSelect = (header: readonly string[]) => { column: number; addresses: ReadonlySet<string> } | null;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** A hash kept as a small integer (a Set of them stays a set of Smis). */
const SMI_MASK = 0x3fffffff;

/** ASCII whitespace as String.prototype.trim sees it: TAB, LF, VT, FF, CR, space. */
const isAsciiSpace = (b: number): boolean => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/** The hash of a record whose address is not plain ASCII (or of the header): always examined. */
export const NOT_ASCII = -1;

/**
 * The hash (FNV-1a) the fast reader computes over an address cell's bytes, from the cell's text:
 * trimmed of ASCII whitespace, ASCII folded to lower case; NOT_ASCII when what is left is not
 * plain ASCII.
 */
export function cellHash(cell: string): number {
  let start = 0;
  let end = cell.length;
  while (start < end && isAsciiSpace(cell.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(cell.charCodeAt(end - 1))) end--;
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) {
    let c = cell.charCodeAt(i);
    if (c >= 0x80) return NOT_ASCII;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return h & SMI_MASK;
}

/**
 * The address hashes of a file's records in record order (the header's is NOT_ASCII), as of one
 * version of the file. A rewrite records them as it reads (FastHashes.seen) and, for the file it
 * writes, carries them over (copied records) or computes them (written ones); the next rewrite of
 * that same file then reads them (FastHashes.known) instead of hashing every address again, which
 * was most of the time a rewrite took for rows it only copies.
 */
export class RecordHashes {
  private data = new Int32Array(1024);
  length = 0;
  /** Every record of the file is in (the fast reader read it to the end). */
  complete = false;

  /** The hashes as one array (read-only; valid until the next push or copy). */
  view(): Int32Array {
    return this.data.subarray(0, this.length);
  }

  push(h: number): void {
    this.room(1);
    this.data[this.length++] = h;
  }

  /** Append the hashes of `src`'s records [from, to). */
  copy(src: RecordHashes, from: number, to: number): void {
    this.room(to - from);
    this.data.set(src.data.subarray(from, to), this.length);
    this.length += to - from;
  }

  /** Release the room not used (4 bytes a record are kept between rewrites). */
  trim(): this {
    this.data = this.data.slice(0, this.length);
    return this;
  }

  private room(n: number): void {
    if (this.length + n <= this.data.length) return;
    const next = new Int32Array(Math.max(this.data.length * 2, this.length + n));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
}

/** The hashes a rewrite was given do not match the file (it changed unseen): read it again without. */
export class StaleHashes extends Error {}

/**
 * With `select`: the record hashes to record (`seen`) and, for this same file, those already known
 * (then `seen` becomes `known`: a read that gets past them has read exactly those).
 */
export interface FastHashes {
  seen: RecordHashes;
  known: RecordHashes | null;
}

/** Can the fast reader take this delimiter at all? (ASCII, never a quote, CR or LF.) */
export function fastDelimiter(delimiter: string): boolean {
  if (delimiter.length === 0) return false;
  for (let i = 0; i < delimiter.length; i++) {
    const c = delimiter.charCodeAt(i);
    if (c > 0x7f || c === QUOTE || c === NL || c === CR) return false;
  }
  return true;
}

function countNl(b: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = b.indexOf(NL, from); i !== -1 && i < to; i = b.indexOf(NL, i + 1)) n++;
  return n;
}

/**
 * Stream the records of an open file from offset 0, in batches (one per chunk read), then return
 * the tail (bytes after the last record). Throws Unsupported (after yielding only records
 * csv-parse reads the same way) when the file needs the full parser.
 */
export async function* fastRecords(
  fh: FileHandle,
  delimiter: string,
  withRaw: boolean,
  chunkSize = CHUNK,
  select?: FastSelect,
  hashes?: FastHashes,
): AsyncGenerator<Array<FastRecord | FastCopy>, Buffer> {
  if (!fastDelimiter(delimiter)) throw new Unsupported('delimiter');
  const delim = Buffer.from(delimiter, 'latin1');
  let picked: Picked | null = null;
  // Known hashes are what this read would record: they are the file's, or the read fails (StaleHashes).
  const known = hashes?.known ?? null;
  const knownAt = known === null ? null : known.view();
  if (hashes !== undefined && known !== null) hashes.seen = known;
  const record = hashes !== undefined && known === null ? hashes.seen : null;
  let copyStart = -1; // absolute start of the pending FastCopy, -1 if none
  let buf: Buffer = Buffer.alloc(0);
  let bufStart = 0; // absolute offset of buf[0]
  let fileOffset = 0; // next byte to read
  let eof = false;
  let pos = 0; // scanning position in buf (start of the current line)
  let prevEnd = 0; // absolute end of the previous record (raw of the next starts here)
  let bomChecked = false;
  let rd: Buffer | null = null; // the record delimiter once discovered
  let line = 1;
  let index = 0;
  let checkedQuotes = 0; // buf offset up to which quotes were ruled out
  let batch: Array<FastRecord | FastCopy> = [];
  /** The address hash `wanted` computed last. */
  const cell = { hash: 0 };
  const readBuf = Buffer.allocUnsafe(chunkSize);
  // The read of the next chunk, started as soon as readBuf was copied out: the disk works while the
  // caller goes through this chunk. Handled once here, so that a reader dropped early (or failed)
  // leaves no unhandled rejection; awaited by the next `more`, which sees its error.
  let ahead: Promise<{ bytesRead: number }> | null = null;
  const readAt = (offset: number): Promise<{ bytesRead: number }> => {
    const p = fh.read(readBuf, 0, chunkSize, offset);
    p.catch(() => undefined);
    return p;
  };

  const more = async (): Promise<void> => {
    const { bytesRead } = await (ahead ?? readAt(fileOffset));
    ahead = null;
    if (bytesRead === 0) {
      eof = true;
      return;
    }
    fileOffset += bytesRead;
    // Keep the bytes from the start of the pending raw (prevEnd) on.
    const keepFrom = prevEnd - bufStart;
    const kept = buf.subarray(keepFrom);
    const next = Buffer.allocUnsafe(kept.length + bytesRead);
    kept.copy(next, 0);
    readBuf.copy(next, kept.length, 0, bytesRead);
    checkedQuotes = Math.max(0, checkedQuotes - keepFrom);
    pos -= keepFrom;
    bufStart += keepFrom;
    buf = next;
    ahead = readAt(fileOffset);
    if (buf.indexOf(QUOTE, checkedQuotes) !== -1) throw new Unsupported('quote');
    checkedQuotes = buf.length;
  };

  await more();
  for (;;) {
    if (!bomChecked) {
      if (buf.length < 3 && !eof) {
        await more();
        continue;
      }
      if (buf.length >= 2 && buf[0] === 0xff && buf[1] === 0xfe) throw new Unsupported('utf16 bom');
      if (buf.length >= 3 && buf[0] === UTF8_BOM[0] && buf[1] === UTF8_BOM[1] && buf[2] === UTF8_BOM[2]) pos = 3;
      bomChecked = true;
    }
    if (rd === null) {
      // The first CR or LF decides the record delimiter.
      let i = pos;
      while (i < buf.length && buf[i] !== NL && buf[i] !== CR) i++;
      if (i === buf.length || (buf[i] === CR && i + 1 === buf.length && !eof)) {
        if (!eof) {
          await more();
          continue;
        }
        if (i === buf.length) break; // no line ending at all: one last record (below)
      }
      if (buf[i] === NL) rd = Buffer.from([NL]);
      else if (buf[i + 1] === NL) rd = Buffer.from([CR, NL]);
      else rd = Buffer.from([CR]);
    }
    const rdLen = rd.length;
    const rd0 = rd[0] as number;
    for (;;) {
      const at = rdLen === 1 ? buf.indexOf(rd0, pos) : buf.indexOf(rd, pos);
      if (at === -1) break;
      if (at === pos) {
        // An empty line: skipped; its bytes go with the next record's raw.
        pos = at + rdLen;
        continue;
      }
      const end = at + rdLen;
      if (picked !== null && !wantedRecord(pos, at, picked)) {
        // Only copied: no record built, the bytes join the pending range.
        if (copyStart === -1) copyStart = prevEnd;
        prevEnd = bufStart + end;
        index++;
      } else {
        flushCopy();
        batch.push(makeRecord(at, end));
      }
      pos = end;
    }
    if (eof) break;
    flushCopy();
    if (batch.length > 0) {
      yield batch;
      batch = [];
    }
    await more();
  }
  // End of file: a last line without a line ending is a record.
  flushCopy();
  if (pos < buf.length) {
    const end = buf.length;
    if (picked !== null && record !== null) {
      wanted(pos, end, picked);
      record.push(cell.hash);
    }
    batch.push(makeRecord(end, end));
    pos = end;
  }
  if (batch.length > 0) yield batch;
  if (hashes !== undefined && picked !== null) {
    if (known !== null && known.length !== index) throw new StaleHashes('record count');
    hashes.seen.complete = true;
  }
  // The tail: bytes after the last record (blank lines).
  return buf.subarray(prevEnd - bufStart);

  function makeRecord(contentEnd: number, end: number): FastRecord {
    const rawStartRel = prevEnd - bufStart;
    const text = buf.toString('utf8', pos, contentEnd);
    const fields = text.split(delimiter);
    // Leading CR/LF bytes of raw (a BOM stops the count, as in a byte scan of raw).
    let leading = 0;
    while (rawStartRel + leading < end && (buf[rawStartRel + leading] === NL || buf[rawStartRel + leading] === CR)) leading++;
    const startLine = line + countNl(buf, rawStartRel, rawStartRel + leading);
    line += countNl(buf, rawStartRel, end);
    const rec: FastRecord = {
      index: index++,
      line: startLine,
      fields,
      rawStart: prevEnd,
      rawEnd: bufStart + end,
      raw: withRaw ? buf.subarray(rawStartRel, end) : null,
      leading,
      // As a byte test of raw (a last line "\r" in an LF file counts as terminated).
      terminated: buf[end - 1] === NL || buf[end - 1] === CR,
    };
    prevEnd = bufStart + end;
    // Records built before `picked` exists (the header) are always examined.
    if (picked === null) record?.push(NOT_ASCII);
    if (rec.index === 0 && select !== undefined) {
      const sel = select(fields);
      if (sel !== null) {
        const wantedHashes = new Set<number>();
        const bits = new Uint8Array(BITMAP_BYTES);
        for (const a of sel.addresses) {
          // The addresses are in quick form (trimmed, lower case): their hash is the cell's.
          const h = cellHash(a);
          if (h === NOT_ASCII) continue;
          wantedHashes.add(h);
          const byte = (h & BITMAP_MASK) >>> 3;
          bits[byte] = (bits[byte] as number) | (1 << (h & 7));
        }
        picked = { ...sel, hashes: wantedHashes, bits };
      }
    }
    return rec;
  }

  function flushCopy(): void {
    if (copyStart === -1) return;
    const from = copyStart - bufStart;
    const to = prevEnd - bufStart;
    batch.push({ copy: true, raw: buf.subarray(from, to), endIndex: index });
    line += countNl(buf, from, to);
    copyStart = -1;
  }

  /**
   * Is record `index`, bytes [from, to), wanted: is its quick address one of `p.addresses`, or not
   * plain ASCII? With the file's hashes known, a record whose hash is not wanted is copied without
   * reading its address; else (and to confirm a hit) the address is hashed from the bytes (`wanted`).
   */
  function wantedRecord(from: number, to: number, p: Picked): boolean {
    if (knownAt !== null) {
      if (index >= knownAt.length) throw new StaleHashes('record count');
      const h = knownAt[index] as number;
      if (h !== NOT_ASCII && !mayWant(p, h)) return false;
      const hit = wanted(from, to, p);
      if (cell.hash !== h) throw new StaleHashes(`record ${index}`);
      return hit;
    }
    const hit = wanted(from, to, p);
    record?.push(cell.hash);
    return hit;
  }

  /**
   * Is the record [from, to) wanted (see wantedRecord)? Runs on the bytes, without building a string
   * for the (many) records that are only copied: the quick form's hash (ASCII folded to lower case)
   * is looked up first, the exact text only on a hit. Leaves the hash in `cell.hash`.
   */
  function wanted(from: number, to: number, p: Picked): boolean {
    let start = from;
    for (let k = 0; k < p.column; k++) {
      const d = delim.length === 1 ? buf.indexOf(delim[0] as number, start) : buf.indexOf(delim, start);
      if (d === -1 || d >= to) {
        cell.hash = EMPTY_HASH;
        return p.addresses.has('');
      }
      start = d + delim.length;
    }
    const d = delim.length === 1 ? buf.indexOf(delim[0] as number, start) : buf.indexOf(delim, start);
    let end = d === -1 || d > to ? to : d;
    while (start < end && isAsciiSpace(buf[start] as number)) start++;
    while (end > start && isAsciiSpace(buf[end - 1] as number)) end--;
    let h = FNV_OFFSET;
    for (let i = start; i < end; i++) {
      let b = buf[i] as number;
      if (b >= 0x80) {
        cell.hash = NOT_ASCII;
        return true;
      }
      if (b >= 0x41 && b <= 0x5a) b |= 0x20;
      h = Math.imul(h ^ b, FNV_PRIME);
    }
    cell.hash = h & SMI_MASK;
    return mayWant(p, cell.hash) && p.addresses.has(buf.toString('latin1', start, end).toLowerCase());
  }
}

/** What a rewrite wants (FastSelect's answer) with the hashes of its ASCII addresses. */
interface Picked {
  column: number;
  addresses: ReadonlySet<string>;
  hashes: Set<number>;
  /** The hashes' low bits as a bitmap: most records are ruled out by one load, without the Set. */
  bits: Uint8Array;
}
const BITMAP_BYTES = 1 << 17;
const BITMAP_MASK = BITMAP_BYTES * 8 - 1;

/** Is `h` one of the wanted hashes? */
function mayWant(p: Picked, h: number): boolean {
  return ((p.bits[(h & BITMAP_MASK) >>> 3] as number) & (1 << (h & 7))) !== 0 && p.hashes.has(h);
}

const EMPTY_HASH = FNV_OFFSET & SMI_MASK;

/** Plain ASCII (every code unit below 0x80). */
export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

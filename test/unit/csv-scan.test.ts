import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanCsv, scanCsvWithParser, scanRows } from '../../connectors/csv/parse.js';
import type { CsvRecord, CsvTail } from '../../connectors/csv/parse.js';
import { Unsupported, fastRecords } from '../../connectors/csv/scan.js';
import { renderRecord } from '../../connectors/csv/write.js';
import { tempDir } from '../fixtures/csv/helpers.js';

/*
 * The fast reader must read every plain file (no quote) exactly as csv-parse does, records,
 * line numbers and raw bytes included; any other file goes to csv-parse. Checked on generated
 * files full of the awkward cases: BOMs, CR / LF / CRLF mixes, blank lines, a missing last line
 * ending, multi-byte text, invalid UTF-8, multi-character delimiters.
 */

const dir = tempDir();
let n = 0;

async function collect(gen: AsyncIterable<CsvRecord | CsvTail>): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  for await (const r of gen) out.push(r.type === 'tail' ? { tail: r.raw.toString('hex') } : { ...r, raw: r.raw.toString('hex') });
  return out;
}

async function fast(path: string, delimiter: string, chunk: number): Promise<Array<Record<string, unknown>> | 'unsupported'> {
  const fh = await open(path, 'r');
  try {
    const out: Array<Record<string, unknown>> = [];
    const it = fastRecords(fh, delimiter, true, chunk);
    for (;;) {
      const next = await it.next();
      if (next.done === true) {
        out.push({ tail: next.value.toString('hex') });
        return out;
      }
      for (const r of next.value) {
        if ('copy' in r) throw new Error('no copies without a select');
        out.push({ type: 'record', index: r.index, line: r.line, fields: r.fields, raw: (r.raw as Buffer).toString('hex'), leading: r.leading, terminated: r.terminated });
      }
    }
  } catch (e) {
    if (e instanceof Unsupported) return 'unsupported';
    throw e;
  } finally {
    await fh.close();
  }
}

const piece = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('a', 'b', 'x@y.io', ' ', 'é', '日', ',', ';', '||') },
  { weight: 4, arbitrary: fc.constantFrom('\n', '\r\n', '\r') },
  { weight: 1, arbitrary: fc.constantFrom('\uFEFF', '\t', '\n\n', '\r\r\n') },
);
const bytesOf = (parts: string[], bom: boolean, bad: boolean): Buffer => {
  const body = Buffer.from(parts.join(''), 'utf8');
  const pre = bom ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0);
  return bad ? Buffer.concat([pre, body, Buffer.from([0xe2, 0x2c, 0xff, 0x0a, 0xc3])]) : Buffer.concat([pre, body]);
};

describe('csv fast reader', () => {
  it('reads plain files exactly as csv-parse does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { maxLength: 60 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(',', ';', '||'),
        fc.constantFrom(1, 2, 3, 7, 64),
        async (parts, bom, bad, delimiter, chunk) => {
          const path = join(dir, `p${n++}.csv`);
          await writeFile(path, bytesOf(parts, bom, bad));
          const expected = await collect(scanCsvWithParser(path, delimiter));
          expect(await fast(path, delimiter, chunk)).toEqual(expected);
          expect(await collect(scanCsv(path, delimiter))).toEqual(expected);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('hands a file with quotes to csv-parse, past the records already read', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { maxLength: 40 }), fc.array(fc.oneof(piece, fc.constant('"')), { maxLength: 20 }), async (plain, quoted) => {
        const path = join(dir, `q${n++}.csv`);
        // Plain lines first (read fast), then quotes; a big enough prefix to span several chunks.
        const prefix = 'email,state\n' + 'a@x.io,yes\n'.repeat(120_000);
        await writeFile(path, prefix + plain.join('') + '"' + quoted.join(''));
        let expected: Array<Record<string, unknown>> | Error;
        try {
          expected = await collect(scanCsvWithParser(path, ','));
        } catch (e) {
          expected = e as Error;
        }
        if (expected instanceof Error) await expect(collect(scanCsv(path, ','))).rejects.toMatchObject({ code: (expected as { code?: string }).code, message: expected.message });
        else expect(await collect(scanCsv(path, ','))).toEqual(expected);
      }),
      { numRuns: 4 },
    );
  });

  it('with a select, the records it does not want come as byte ranges; everything else as csv-parse reads it', async () => {
    const emails = fc.constantFrom('a@x.io', ' A@X.io', '\tA@x.IO \t', 'b@x.io', 'B@x.io', 'é@x.io', ' \u00a0a@x.io', '', 'c@x.io ', 'ab@x.io');
    const row = fc.tuple(emails, fc.constantFrom('yes', 'no', ''), fc.boolean()).map(([e, st, short]) => (short ? e : `${st};${e};z`));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(row, fc.constantFrom('\n', '\n\n', '\r\n')), { maxLength: 50 }), fc.constantFrom('state;email;x\n', '\uFEFFstate;email\n'), fc.constantFrom(3, 16, 1 << 20), async (rows, header, chunk) => {
        const path = join(dir, `s${n++}.csv`);
        await writeFile(path, header + rows.map(([r, eol]) => r + eol).join(''));
        const all = await collect(scanCsvWithParser(path, ';'));
        // 'B@x.io' is never any record's quick form (lower case): the fold applies to the records only.
        const addresses = new Set(['a@x.io', '', 'B@x.io']);
        const wanted = (quick: string): boolean => addresses.has(quick) || [...quick].some((ch) => ch.charCodeAt(0) > 0x7f);
        const fh = await open(path, 'r');
        const got: Array<Record<string, unknown>> = [];
        try {
          const it = fastRecords(fh, ';', true, chunk, (h) => (h.includes('email') ? { column: h.indexOf('email'), addresses } : null));
          for (let next = await it.next(); ; next = await it.next()) {
            if (next.done === true) {
              got.push({ tail: next.value.toString('hex') });
              break;
            }
            for (const r of next.value) got.push('copy' in r ? { copy: r.raw.toString('hex'), endIndex: r.endIndex } : { type: 'record', index: r.index, line: r.line, fields: r.fields, raw: (r.raw as Buffer).toString('hex'), leading: r.leading, terminated: r.terminated });
          }
        } finally {
          await fh.close();
        }
        // Same bytes in the same order, and the records it kept are csv-parse's, at the same index.
        expect(got.map((g) => (g.copy ?? g.raw ?? g.tail) as string).join('')).toEqual(all.map((a) => (a.raw ?? a.tail) as string).join(''));
        const records = all.filter((a) => a.type === 'record');
        const kept = got.filter((g) => g.type === 'record');
        for (const k of kept) expect(k).toEqual(records[k.index as number]);
        const quick = (r: Record<string, unknown>): string => ((r.fields as string[])[1] ?? '').trim().toLowerCase();
        expect(kept.map((k) => k.index)).toEqual(records.filter((r) => r.index === 0 || wanted(quick(r))).map((r) => r.index));
        if (got.at(-2)?.endIndex !== undefined) expect(got.at(-2)?.endIndex).toBe(records.length);
      }),
      { numRuns: 300 },
    );
  });

  it('scanRows gives the records without their bytes; a missing file is CSV_FILE_MISSING', async () => {
    const path = join(dir, 'rows.csv');
    await writeFile(path, '\uFEFFemail;state\r\n\r\na@x.io;yes\r\nb@x.io;"no"');
    const rows: unknown[] = [];
    for await (const r of scanRows(path, ';')) rows.push([r.index, r.line, r.fields]);
    expect(rows).toEqual([
      [0, 1, ['email', 'state']],
      [1, 3, ['a@x.io', 'yes']],
      [2, 4, ['b@x.io', 'no']],
    ]);
    await expect(collect(scanCsv(join(dir, 'none.csv'), ','))).rejects.toMatchObject({ code: 'CSV_FILE_MISSING' });
  });
});

describe('csv row rendering', () => {
  it('renderRecord writes what csv-stringify writes', () => {
    const field = fc.array(fc.constantFrom('a', 'é', ',', ';', ':', '"', '\n', '\r', ' ', '||', '|'), { maxLength: 6 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(field, { minLength: 1, maxLength: 6 }), fc.constantFrom(',', ';', '||', '::'), fc.constantFrom('\n', '\r\n'), (fields, delimiter, eol) => {
        expect(renderRecord(fields, delimiter, eol)).toBe(stringify([fields], { delimiter, record_delimiter: eol === '\r\n' ? 'windows' : 'unix' }));
      }),
      { numRuns: 3000 },
    );
  });
});

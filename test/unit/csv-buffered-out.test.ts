import { describe, expect, it } from 'vitest';
import type { FileHandle } from 'node:fs/promises';
import { BufferedOut } from '../../connectors/csv/buffered-out.js';

/** A file handle that records what is written; `failAt` makes that write (0-based) fail, `partial` writes half at a time. */
function fakeFile(opts: { failAt?: number; partial?: boolean } = {}) {
  const written: Buffer[] = [];
  let calls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const fh = {
    async write(buf: Buffer): Promise<{ bytesWritten: number }> {
      const call = calls++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 1));
      inFlight--;
      if (call === opts.failAt) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      const n = opts.partial === true ? Math.max(1, Math.ceil(buf.length / 2)) : buf.length;
      written.push(Buffer.from(buf.subarray(0, n)));
      return { bytesWritten: n };
    },
  };
  return { fh: fh as unknown as FileHandle, text: () => Buffer.concat(written).toString(), maxInFlight: () => maxInFlight };
}

describe('csv: the temp file writer', () => {
  it('writes every piece in order, one write at a time, partial writes resumed', async () => {
    const f = fakeFile({ partial: true });
    const out = new BufferedOut(f.fh);
    for (let i = 0; i < 50; i++) {
      out.add(Buffer.from(`row ${i}\n`));
      if (i % 7 === 0) await out.flush();
    }
    await out.end();
    expect(f.text()).toBe(Array.from({ length: 50 }, (_, i) => `row ${i}\n`).join(''));
    expect(f.maxInFlight()).toBe(1);
  });

  it('a write that fails is reported by the next flush, and by end', async () => {
    const f = fakeFile({ failAt: 0 });
    const out = new BufferedOut(f.fh);
    out.add(Buffer.from('a\n'));
    await out.flush();
    out.add(Buffer.from('b\n'));
    await expect(out.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(out.end()).rejects.toMatchObject({ code: 'ENOSPC' });
  });

  it('a failure of the last write is reported by end', async () => {
    const f = fakeFile({ failAt: 1 });
    const out = new BufferedOut(f.fh);
    out.add(Buffer.from('a\n'));
    await out.flush();
    out.add(Buffer.from('b\n'));
    await expect(out.end()).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(f.text()).toBe('a\n');
  });
});

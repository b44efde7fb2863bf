import type { FileHandle } from 'node:fs/promises';

/**
 * The temp file's writer: rows are buffered and written in large pieces, and a piece is written
 * while the next one is being filled (`flush` waits only for the previous write). A failed write
 * is reported by the next `flush` or by `end`.
 */
export class BufferedOut {
  private parts: Buffer[] = [];
  private size = 0;
  private writing: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | null = null;
  lastByte = -1;
  constructor(private readonly fh: FileHandle) {}
  /** Buffer `b` without a promise (the per-row hot path); the caller flushes (see `due`). */
  add(b: Buffer): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.size += b.length;
    this.lastByte = b[b.length - 1] ?? -1;
  }
  get due(): boolean {
    return this.size >= 1 << 16;
  }
  /** Start writing what is buffered, once the previous write is done. */
  async flush(): Promise<void> {
    await this.settled();
    if (this.size === 0) return;
    const buf = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    this.writing = this.writeAll(buf).catch((error: unknown) => {
      this.failure = { error };
    });
  }
  /** Everything buffered is written (or the first failure thrown). */
  async end(): Promise<void> {
    await this.flush();
    await this.settled();
  }
  private async settled(): Promise<void> {
    await this.writing;
    if (this.failure !== null) throw this.failure.error;
  }
  private async writeAll(buf: Buffer): Promise<void> {
    while (buf.length > 0) {
      const { bytesWritten } = await this.fh.write(buf);
      buf = buf.subarray(bytesWritten);
    }
  }
}

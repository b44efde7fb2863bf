/**
 * A fixed-size Bloom filter of strings: "certainly not added" or "maybe added". The store uses one
 * per connector pull to prove that a record was not logged earlier in the same run (see
 * SqliteStore.ingestPage); a false "maybe" only costs the exact check later.
 */
export class BloomFilter {
  private readonly bits: Uint32Array;
  private readonly mask: number;

  /** `log2Bits`: 2^log2Bits bits (default 2^23 = 1 MiB: ~2% false positives at a million entries). */
  constructor(
    log2Bits = 23,
    private readonly k = 6,
  ) {
    this.bits = new Uint32Array(2 ** (log2Bits - 5));
    this.mask = 2 ** log2Bits - 1;
  }

  add(s: string): void {
    const [first, h2] = hashes(s);
    let h1 = first;
    for (let i = 0; i < this.k; i++) {
      const b = (h1 & this.mask) >>> 0;
      this.bits[b >>> 5] = (this.bits[b >>> 5] as number) | (1 << (b & 31));
      h1 = (h1 + h2) >>> 0;
    }
  }

  has(s: string): boolean {
    const [first, h2] = hashes(s);
    let h1 = first;
    for (let i = 0; i < this.k; i++) {
      const b = (h1 & this.mask) >>> 0;
      if (((this.bits[b >>> 5] as number) & (1 << (b & 31))) === 0) return false;
      h1 = (h1 + h2) >>> 0;
    }
    return true;
  }
}

/** Two 32-bit hashes (FNV-1a and a murmur-style mix) for double hashing. */
function hashes(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [a >>> 0, (b | 1) >>> 0];
}

/**
 * Salesforce record ids: 3-char key prefix + 2-char pod + reserved '0' + 9 base62 digits (15
 * case-sensitive chars), plus the 3-char case-safe suffix that makes the 18-char form. Ids are
 * derived from a per-table sequence number, so rows need not store their id, and the base62
 * alphabet (0-9A-Za-z) keeps string order equal to creation order.
 */
const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SUFFIX = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
const POD = '5g0';

export function checksum(id15: string): string {
  let out = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    out += SUFFIX[bits];
  }
  return out;
}

export function makeId(prefix: string, n: number): string {
  let digits = '';
  let v = n;
  for (let i = 0; i < 9; i++) {
    digits = B62[v % 62] + digits;
    v = Math.floor(v / 62);
  }
  const id15 = prefix + POD + digits;
  return id15 + checksum(id15);
}

/** Restores the case of an 18-char id (whose suffix encodes it) and returns its 15-char form. */
export function to15(id: string): string | null {
  if (id.length === 15) return /^[0-9A-Za-z]{15}$/.test(id) ? id : null;
  if (id.length !== 18 || !/^[0-9A-Za-z]{18}$/.test(id)) return null;
  let out = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    const bits = SUFFIX.indexOf(id.charAt(15 + chunk).toUpperCase());
    if (bits < 0) return null;
    for (let i = 0; i < 5; i++) {
      const ch = id.charAt(chunk * 5 + i);
      out += bits & (1 << i) ? ch.toUpperCase() : ch.toLowerCase();
    }
  }
  return out;
}

/** Normalizes any valid id to its 18-char form, or null when malformed. */
export function to18(id: string): string | null {
  const id15 = to15(id);
  return id15 === null ? null : id15 + checksum(id15);
}

/** The sequence number of an id of this key prefix made by makeId, or null. */
export function parseSeq(prefix: string, id: string): number | null {
  const id15 = to15(id);
  if (id15 === null || !id15.startsWith(prefix + POD)) return null;
  let n = 0;
  for (let i = 6; i < 15; i++) {
    const d = B62.indexOf(id15.charAt(i));
    if (d < 0) return null;
    n = n * 62 + d;
  }
  return n;
}

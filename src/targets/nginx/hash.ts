// Sizing nginx's hash tables from the data. nginx refuses a config ("could not build
// server_names_hash, you should increase server_names_hash_bucket_size") when one name does
// not fit a bucket or when no table size up to *_max_size spreads the names thinly enough.
// This replays ngx_hash_init's search (src/core/ngx_hash.c) over the names the config
// declares and picks the smallest bucket size (a power of two from 128) and a max_size that
// nginx will succeed with; the buckets nginx allocates follow the data, so a larger limit
// costs nothing when it is not needed.

const PTR = 8; // sizeof(void *) on the 64-bit platforms nginx runs on here
const TWO32 = 4294967296;

const align = (n: number, a: number) => Math.ceil(n / a) * a;
/** NGX_HASH_ELT_SIZE: value pointer + u_short length + name, pointer-aligned */
const eltSize = (len: number) => PTR + align(len + 2, PTR);

/**
 * ngx_hash_key_lc over the (lowercased) name's bytes, in ngx_uint_t arithmetic (64-bit
 * wrap-around), as two exact 32-bit halves in doubles: `k * 31 + b` per byte without BigInt
 * (100,000 API key hashes are 6.4 million steps).
 */
export function hashHalves(lower: string): { hi: number; lo: number } {
  let hi = 0;
  let lo = 0;
  const ascii = /^[\x00-\x7f]*$/.test(lower);
  const bytes = ascii ? null : Buffer.from(lower, 'utf8');
  const n = bytes ? bytes.length : lower.length;
  for (let i = 0; i < n; i++) {
    const l = lo * 31 + (bytes ? bytes[i] : lower.charCodeAt(i)); // < 2^37: exact
    const carry = Math.floor(l / TWO32);
    lo = l - carry * TWO32;
    hi = (hi * 31 + carry) % TWO32;
  }
  return { hi, lo };
}

interface Table {
  elts: number[];
  hi: number[];
  lo: number[];
}

function table(names: string[]): Table {
  const keys = [...new Set(names.map((n) => n.toLowerCase()))];
  // the 64-bit keys as two 32-bit halves: key % size = (hi % size * 2^32 % size + lo % size) % size
  const t: Table = { elts: new Array(keys.length), hi: new Array(keys.length), lo: new Array(keys.length) };
  keys.forEach((k, i) => {
    const h = hashHalves(k);
    t.elts[i] = eltSize(Buffer.byteLength(k));
    t.hi[i] = h.hi;
    t.lo[i] = h.lo;
  });
  return t;
}

function fits(t: Table, bucketSize: number, maxSize: number): boolean {
  const n = t.elts.length;
  if (!n) return true;
  if (t.elts.some((e) => bucketSize < e + PTR)) return false;
  const limit = bucketSize - PTR;
  let start = Math.floor(n / Math.floor(bucketSize / (2 * PTR))) || 1;
  if (maxSize > 10000 && maxSize / n < 100) start = maxSize - 1000;
  // nginx tries every size from `start` up to max_size and takes the first that fits; one
  // fitting size near the top is enough to know it will succeed. Up to 64 sizes are tried,
  // fewer for very large tables (about 2 million slot checks in all): a size not tried can
  // only make the sizing pick a larger bucket, never one nginx refuses.
  const tries = Math.max(8, Math.min(64, Math.floor(2_000_000 / n)));
  const test = new Uint32Array(maxSize + 1);
  for (let size = maxSize; size >= Math.max(start, maxSize - tries); size--) {
    test.fill(0, 0, size);
    const high = 4294967296 % size;
    let ok = true;
    for (let i = 0; i < n; i++) {
      const slot = ((t.hi[i] % size) * high + (t.lo[i] % size)) % size;
      const len = test[slot] + t.elts[i];
      if (len > limit) {
        ok = false;
        break;
      }
      test[slot] = len;
    }
    if (ok) return true;
  }
  return false;
}

/** Will ngx_hash_init succeed for these names with this bucket size and max_size? */
export function hashFits(names: string[], bucketSize: number, maxSize: number): boolean {
  return fits(table(names), bucketSize, maxSize);
}

export interface HashSizing {
  bucketSize: number;
  maxSize: number;
}

/**
 * The smallest bucket size (128, 256, …) and a max_size (at least nginx's default) with
 * which every one of `tables` builds. Each table is the names of one hash (one map, or the
 * server names of one listening port).
 */
export function sizeHashes(tables: string[][], defaultMax: number): HashSizing {
  const nonEmpty = tables.filter((t) => t.length);
  const most = Math.max(0, ...nonEmpty.map((t) => t.length));
  const prepared = nonEmpty.map(table);
  // max_size up to 4 slots per name: nginx allocates only the size it settles on
  let top = defaultMax;
  while (top < 4 * most && top < 262144) top *= 2;
  for (let bucketSize = 128; bucketSize <= 4096; bucketSize *= 2) {
    for (let maxSize = defaultMax; maxSize <= top; maxSize *= 2) {
      if (prepared.every((t) => fits(t, bucketSize, maxSize))) return { bucketSize, maxSize };
    }
  }
  // names this long or this many do not pass the schema; keep nginx's own error then
  return { bucketSize: 4096, maxSize: top };
}

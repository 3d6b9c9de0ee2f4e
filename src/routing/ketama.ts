// nginx's `hash KEY consistent` placement, reimplemented exactly (ngx_http_upstream_hash_module.c,
// nginx 1.24–1.27), so `gatewayctl route` can say where a key goes without asking nginx.
//
// Ring (built once per upstream when nginx loads the config):
//   for each peer in configuration order, with `server` = the address string as written:
//     split it into HOST and PORT at the last ':' if only digits follow (unix:/path → host, no port)
//     base = crc32 over HOST, one 0 byte, PORT
//     prev = 0; repeat weight × 160 times:
//       point = crc32 over (base state) + the 4 bytes of prev (little-endian); prev = point
//   sort the points by hash and drop later duplicates of the same hash.
// Lookup (per request):
//   h = crc32(key); i = index of the first point with hash >= h (the point count when none);
//   try the server of point[i % n]: skip it when it is down, already tried, or failed
//   (fails >= max_fails within fail_timeout), then i + 1, … — so the fallback for a key is the
//   next point on the ring that belongs to another usable server.
// Pure: no I/O.

export const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Running CRC-32 (IEEE, as ngx_crc32_update): start with 0xffffffff, finish with `~c >>> 0`. */
function crcUpdate(crc: number, bytes: Uint8Array): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** CRC-32 of a string's UTF-8 bytes (nginx hashes the key's bytes as evaluated). */
export function crc32(s: string | Uint8Array): number {
  const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return (crcUpdate(0xffffffff, bytes) ^ 0xffffffff) >>> 0;
}

export interface RingServer {
  /** The `server` address exactly as written in the upstream block (e.g. `127.0.0.1:9001`). */
  address: string;
  weight: number;
  /** `down` servers keep their points on the ring but are never chosen. */
  down?: boolean;
}

export interface RingPoint {
  hash: number;
  server: number; // index into the server list
}

export interface Ring {
  servers: RingServer[];
  points: RingPoint[];
}

/** HOST and PORT as nginx splits the server string for the ring (ngx_http_upstream_init_chash). */
export function splitServer(address: string): { host: string; port: string } {
  if (address.length >= 5 && address.slice(0, 5).toLowerCase() === 'unix:') return { host: address.slice(5), port: '' };
  for (let j = 0; j < address.length; j++) {
    const c = address[address.length - j - 1];
    if (c === ':') return { host: address.slice(0, address.length - j - 1), port: address.slice(address.length - j) };
    if (c < '0' || c > '9') break;
  }
  return { host: address, port: '' };
}

export const POINTS_PER_WEIGHT = 160;

export function buildRing(servers: RingServer[]): Ring {
  const points: RingPoint[] = [];
  const prev = Buffer.alloc(4);
  servers.forEach((s, idx) => {
    const { host, port } = splitServer(s.address);
    const base = crcUpdate(crcUpdate(crcUpdate(0xffffffff, Buffer.from(host, 'utf8')), Buffer.from([0])), Buffer.from(port, 'utf8'));
    prev.writeUInt32LE(0, 0);
    const n = s.weight * POINTS_PER_WEIGHT;
    for (let j = 0; j < n; j++) {
      const hash = (crcUpdate(base, prev) ^ 0xffffffff) >>> 0;
      points.push({ hash, server: idx });
      prev.writeUInt32LE(hash, 0);
    }
  });
  // nginx sorts with qsort (not stable) and keeps the first of equal hashes; a collision
  // between two servers' points (2^-32 per pair) is the only place this can differ.
  points.sort((a, b) => a.hash - b.hash || a.server - b.server);
  const dedup: RingPoint[] = [];
  for (const p of points) if (!dedup.length || dedup[dedup.length - 1].hash !== p.hash) dedup.push(p);
  return { servers, points: dedup };
}

/** Index of the first point with hash >= h (points.length when none), as ngx_http_upstream_find_chash_point. */
export function findPoint(ring: Ring, h: number): number {
  const pts = ring.points;
  let i = 0;
  let j = pts.length;
  while (i < j) {
    const k = (i + j) >>> 1;
    if (h > pts[k].hash) i = k + 1;
    else if (h < pts[k].hash) j = k;
    else return k;
  }
  return i;
}

export interface Placement {
  key: string;
  keyHash: number;
  /** Ring index the lookup starts at (may equal the point count: it wraps to 0). */
  start: number;
  /** The server nginx picks with every server usable (index into ring.servers), or null when none is. */
  server: number | null;
  /**
   * Usable servers in the order nginx tries them for this key: the first is the pick, the
   * next is where the key goes when that one is down or failed, and so on.
   */
  order: { server: number; point: number; hash: number }[];
  /** Servers met on the ring before the pick and skipped: `down`, or listed in `unavailable`. */
  skipped: { server: number; point: number; reason: 'down' | 'unavailable' }[];
}

/**
 * Where `key` lands. `unavailable` marks servers to treat as failed (passive health: max_fails
 * reached within fail_timeout); they are skipped exactly like nginx skips them.
 */
export function place(ring: Ring, key: string, unavailable: ReadonlySet<number> = new Set()): Placement {
  const keyHash = crc32(key);
  const start = findPoint(ring, keyHash);
  const n = ring.points.length;
  const order: Placement['order'] = [];
  const skipped: Placement['skipped'] = [];
  const seen = new Set<number>();
  for (let t = 0; t < n && seen.size < ring.servers.length; t++) {
    const idx = (start + t) % n;
    const p = ring.points[idx];
    if (seen.has(p.server)) continue;
    seen.add(p.server);
    const s = ring.servers[p.server];
    const reason = s.down ? 'down' : unavailable.has(p.server) ? 'unavailable' : null;
    if (reason === null) order.push({ server: p.server, point: idx, hash: p.hash });
    else if (!order.length) skipped.push({ server: p.server, point: idx, reason });
  }
  // nginx gives up (502) only after walking every point; order holds every usable server.
  return { key, keyHash, start, server: order.length ? order[0].server : null, order, skipped };
}

/** Share of the 2^32 hash space each server owns (a point owns the arc ending at it). */
export function shares(ring: Ring): number[] {
  const out = ring.servers.map(() => 0);
  const pts = ring.points;
  if (!pts.length) return out;
  for (let i = 0; i < pts.length; i++) {
    const prevHash = i === 0 ? pts[pts.length - 1].hash - 0x100000000 : pts[i - 1].hash;
    out[pts[i].server] += (pts[i].hash - prevHash) / 0x100000000;
  }
  return out;
}

/** The server (address) a hash lands on: the first usable server from the first point >= h. */
function ownerOf(ring: Ring, h: number): string | null {
  const n = ring.points.length;
  const start = findPoint(ring, h);
  for (let t = 0; t < n; t++) {
    const s = ring.servers[ring.points[(start + t) % n].server];
    if (!s.down) return s.address;
  }
  return null;
}

/**
 * Exact share of the hash space (= share of keys) whose server changes between two rings,
 * matched by server address; `down` servers' keys count where nginx sends them (successor).
 * Owners only change at points of either ring, so each arc between consecutive points of the
 * union is checked once.
 */
export function movedShare(before: Ring, after: Ring): number {
  const cuts = [...new Set([...before.points.map((p) => p.hash), ...after.points.map((p) => p.hash)])].sort((a, b) => a - b);
  if (!cuts.length) return 0;
  let moved = 0;
  for (let i = 0; i < cuts.length; i++) {
    // the arc (cuts[i-1], cuts[i]] (the first one wraps from the last cut through 2^32)
    const len = i === 0 ? cuts[0] + 0x100000000 - cuts[cuts.length - 1] : cuts[i] - cuts[i - 1];
    if (ownerOf(before, cuts[i]) !== ownerOf(after, cuts[i])) moved += len;
  }
  return moved / 0x100000000;
}

/**
 * The least share of keys any placement has to move between two server lists: the keys
 * whose server must change because its share of the weight changed (total variation
 * distance of the weight shares, matched by address; `down` servers hold none). Adding a
 * server to three gives 25%; replacing one of three gives 33.3% (only the replaced server's
 * keys), where nginx's ring moves about half (the new server also takes keys from the others).
 * null when either side has no usable server.
 */
export function minimalMovedShare(before: RingServer[], after: RingServer[]): number | null {
  const dist = (xs: RingServer[]): Map<string, number> | null => {
    const live = xs.filter((x) => !x.down && x.weight > 0);
    const total = live.reduce((s, x) => s + x.weight, 0);
    if (!total) return null;
    const m = new Map<string, number>();
    for (const x of live) m.set(x.address, (m.get(x.address) ?? 0) + x.weight / total);
    return m;
  };
  const a = dist(before);
  const b = dist(after);
  if (!a || !b) return null;
  let d = 0;
  for (const k of new Set([...a.keys(), ...b.keys()])) d += Math.abs((a.get(k) ?? 0) - (b.get(k) ?? 0));
  return d / 2;
}

// The pure parts of the upstream state plane (njs/lib/health.ts): nginx's consistent-hash
// lookup with servers skipped, the ring points of servers added at runtime, weighted picks, nginx's lists of upstream tries and the probe
// verdict. No nginx objects, so src/ and the tests use them too; tests/state/health-unit
// checks the lookup against src/routing/ketama.ts, the placement `gatewayctl route` explains.

export interface HealthCheckConf {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  expectStatus: number[];
  expectBody: string | null;
  expectModels: string[];
  rise: number;
  fall: number;
}

/** Index of x in a (-1): the preload object's arrays lack Array.prototype methods. */
export function indexIn<T>(a: T[], x: T): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] === x) {
      return i;
    }
  }
  return -1;
}

/** CRC-32 of bytes, as ngx_crc32_long (table: nginx's, from the preload object). */
export function crc32(table: number[], bytes: Uint8Array | number[]): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Index of the first ring point with hash >= h (ring.length when none), as nginx's find_chash_point. */
export function findPoint(ring: number[], h: number): number {
  let i = 0;
  let j = ring.length;
  while (i < j) {
    const k = (i + j) >>> 1;
    if (h > ring[k]) {
      i = k + 1;
    } else if (h < ring[k]) {
      j = k;
    } else {
      return k;
    }
  }
  return i;
}

/**
 * The server nginx's `hash … consistent` gives a key hash, skipping servers for which
 * `usable(i)` is false (each server is asked once, in ring order): -1 when none is usable.
 */
export function ringPick(ring: number[], owners: number[], servers: number, h: number, usable: (i: number) => boolean): number {
  const n = ring.length;
  if (n === 0) {
    return -1;
  }
  const start = findPoint(ring, h);
  const seen: { [i: number]: number } = {};
  let asked = 0;
  for (let t = 0; t < n && asked < servers; t++) {
    const s = owners[(start + t) % n];
    if (seen[s] === 1) {
      continue;
    }
    seen[s] = 1;
    asked++;
    if (usable(s)) {
      return s;
    }
  }
  return -1;
}

/** Weighted pick of the n-th request among the usable servers (round robin): -1 when none. */
export function weightedPick(weights: number[], n: number, usable: (i: number) => boolean): number {
  let total = 0;
  const ok: number[] = [];
  for (let i = 0; i < weights.length; i++) {
    if (usable(i)) {
      ok.push(i);
      total += weights[i];
    }
  }
  if (total === 0) {
    return -1;
  }
  let pos = n % total;
  for (let j = 0; j < ok.length; j++) {
    pos -= weights[ok[j]];
    if (pos < 0) {
      return ok[j];
    }
  }
  return ok[ok.length - 1];
}

/**
 * Every try of a proxied request: $upstream_addr and $upstream_status list them separated by
 * ", " (next upstream) and " : " (internal redirects between upstream groups).
 */
export function upstreamTries(addrs: string, statuses: string): { addr: string; status: number }[] {
  const a = addrs.split(/, | : /);
  const s = statuses.split(/, | : /);
  const out: { addr: string; status: number }[] = [];
  for (let i = 0; i < a.length && i < s.length; i++) {
    if (a[i] === '' || a[i] === '-') {
      continue;
    }
    out.push({ addr: a[i], status: parseInt(s[i], 10) || 0 });
  }
  return out;
}

/** Does a probe answer pass? 0 passed, 2 wrong status, 3 body text missing, 4 a model not listed. */
export function probeVerdict(h: HealthCheckConf, status: number, body: string): number {
  if (indexIn(h.expectStatus, status) < 0) {
    return 2;
  }
  if (h.expectBody !== null && body.indexOf(h.expectBody) < 0) {
    return 3;
  }
  if (h.expectModels.length) {
    let listed: { [id: string]: number } = {};
    try {
      const doc = JSON.parse(body);
      const data = doc && doc.data;
      if (data && typeof data.length === 'number') {
        for (let i = 0; i < data.length; i++) {
          if (data[i] && typeof data[i].id === 'string') {
            listed[data[i].id] = 1;
          }
        }
      }
    } catch (e) {
      listed = {};
    }
    for (let j = 0; j < h.expectModels.length; j++) {
      if (listed[h.expectModels[j]] !== 1) {
        return 4;
      }
    }
  }
  return 0;
}


/** Running CRC-32 over bytes from state c (ngx_crc32_update): start 0xffffffff, finish ^ 0xffffffff. */
function crcUpdate(table: number[], c: number, bytes: Uint8Array | number[]): number {
  for (let i = 0; i < bytes.length; i++) {
    c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return c >>> 0;
}

/**
 * A server's ring points in the order nginx makes them (ngx_http_upstream_init_chash, as
 * src/routing/ketama.ts buildRing): the address split into HOST and PORT at the last ':' when
 * only digits follow (unix:/path: no port); base = crc32 state over HOST, a 0 byte, PORT;
 * then 160 × weight points, each crc32 of the base state and the previous point's 4 bytes
 * (little-endian, 0 for the first).
 */
export function serverPoints(table: number[], address: string, weight: number): number[] {
  let host = address;
  let port = '';
  if (address.length >= 5 && address.substring(0, 5).toLowerCase() === 'unix:') {
    host = address.substring(5);
  } else {
    for (let j = 0; j < address.length; j++) {
      const ch = address.charAt(address.length - j - 1);
      if (ch === ':') {
        host = address.substring(0, address.length - j - 1);
        port = address.substring(address.length - j);
        break;
      }
      if (ch < '0' || ch > '9') {
        break;
      }
    }
  }
  const base = crcUpdate(table, crcUpdate(table, crcUpdate(table, 0xffffffff, Buffer.from(host)), [0]), Buffer.from(port));
  const out: number[] = [];
  let prev = 0;
  const n = weight * 160;
  for (let k = 0; k < n; k++) {
    const h = (crcUpdate(table, base, [prev & 0xff, (prev >>> 8) & 0xff, (prev >>> 16) & 0xff, prev >>> 24]) ^ 0xffffffff) >>> 0;
    out.push(h);
    prev = h;
  }
  return out;
}

/**
 * A server's points as a ring of its own, as the runtime dict keeps it: sorted, equal hashes
 * once (as buildRing keeps them), each as 8 hex digits, so that a lookup reads the few points
 * it needs (pointAt) without parsing the whole list.
 */
export function sortedPoints(points: number[]): string {
  points.sort(function (a: number, b: number): number {
    return a - b;
  });
  let out = '';
  for (let k = 0; k < points.length; k++) {
    if (k === 0 || points[k] !== points[k - 1]) {
      out += ('0000000' + points[k].toString(16)).slice(-8);
    }
  }
  return out;
}

/** The k-th point of a sortedPoints list. */
export function pointAt(list: string, k: number): number {
  return parseInt(list.substring(k * 8, k * 8 + 8), 16);
}

/** findPoint on a sortedPoints list. */
function findPointIn(list: string, h: number): number {
  let i = 0;
  let j = list.length / 8;
  while (i < j) {
    const k = (i + j) >>> 1;
    const p = pointAt(list, k);
    if (h > p) {
      i = k + 1;
    } else if (h < p) {
      j = k;
    } else {
      return k;
    }
  }
  return i;
}

/**
 * ringPick on the build-time ring (`ring`, `owners`) with more servers' points added, as nginx
 * would build the ring with those servers listed after the configured ones: `extra[k]` (from
 * sortedPoints) are the points of server `extraOwners[k]` (indices after the configured
 * servers). The merged ring is walked lazily from the first point >= h: at each step the
 * smallest next point of all the lists (wrapping past 2^32), of equal hashes only the one of
 * the lowest server index (the one nginx keeps); usually the first point ends the walk.
 */
export function ringPickWith(
  ring: number[],
  owners: number[],
  extra: string[],
  extraOwners: number[],
  servers: number,
  h: number,
  usable: (i: number) => boolean,
): number {
  const lists = extra.length + 1;
  const start: number[] = [];
  const step: number[] = [];
  const len: number[] = [];
  let total = 0;
  for (let k = 0; k < lists; k++) {
    len.push(k === 0 ? ring.length : extra[k - 1].length / 8);
    start.push(k === 0 ? findPoint(ring, h) : findPointIn(extra[k - 1], h));
    step.push(0);
    total += len[k];
  }
  const seen: { [i: number]: number } = {};
  let asked = 0;
  let last = -1;
  for (let t = 0; t < total && asked < servers; t++) {
    // the list whose next point comes first on the ring from h
    let best = -1;
    let bestHash = 0;
    let bestOwner = 0;
    for (let k = 0; k < lists; k++) {
      if (step[k] >= len[k]) {
        continue;
      }
      let at = start[k] + step[k];
      const wrap = at >= len[k] ? 4294967296 : 0;
      if (wrap > 0) {
        at -= len[k];
      }
      const vh = (k === 0 ? ring[at] : pointAt(extra[k - 1], at)) + wrap;
      const o = k === 0 ? owners[at] : extraOwners[k - 1];
      if (best < 0 || vh < bestHash || (vh === bestHash && o < bestOwner)) {
        best = k;
        bestHash = vh;
        bestOwner = o;
      }
    }
    step[best]++;
    if (bestHash === last) {
      continue; // a point of a later server on the same hash: not on nginx's ring
    }
    last = bestHash;
    if (seen[bestOwner] === 1) {
      continue;
    }
    seen[bestOwner] = 1;
    asked++;
    if (usable(bestOwner)) {
      return bestOwner;
    }
  }
  return -1;
}

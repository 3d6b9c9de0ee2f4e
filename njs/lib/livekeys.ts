/// <reference path="../../node_modules/njs-types/ngx_http_js_module.d.ts" />
// Runtime API keys (auth.api_keys + admin_api): keys created, revoked and rotated through the
// admin API take effect on the next request, on every worker, without a rebuild or a reload.
// The key store (keys.yaml) stays the source of truth for builds; `gatewayctl keys … --live`
// writes it too, so the next build carries the change (docs/njs-auth.md, "Runtime keys").
//
//   js_shared_dict_zone zone=gw_keys:1m type=string;
//   js_set $gw_apikey_live gateway.apiKeyLive;   (after gateway.apiKey, see liveKeys in auth/render.ts)
//   location /admin/keys { set $gw_keys_admin 1; … js_content gateway.apiKeyLive; }  (status listener)
//
// Dict entries (persisted in <prefix>/state/keys.json, loaded by the first request after a
// start; a reload keeps the zone):
//   <sha256 hex>  "r<at>|<id>"                                a key of the build's map, refused from
//                                                           unix second <at> (0: at once)
//                 "k<client>|<role>|<tier>|<expires>|<revoke_at>|<id>"   a key created live
//   g             "0": no "r" entry; "r": some; absent: not loaded yet
//
// The request path: gateway.apiKey and the build's map answer first (a key revoked in keys.yaml
// maps to "!"); nginx calls gateway.apiKeyLive only when the map does not accept the key, or
// while the flag file state/keys-revoked says a key of the map is revoked live. A request with
// a key of the map and no live revocation pays no dict read and no extra njs call.
import cr from 'crypto';
import fs from 'fs';
import { decidePresentedKey, extractApiKey, hashApiKey, keyExpiry, KeyMeta, parseKeyMeta } from './apikey.ts';

export const LIVE_KEYS_ZONE = 'gw_keys';

interface LiveDict {
  get(k: string): string | undefined;
  set(k: string, v: string): unknown;
  delete(k: string): unknown;
  items(): [string, string][];
}

function liveDict(): LiveDict {
  return ngx.shared[LIVE_KEYS_ZONE] as unknown as LiveDict;
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

function statePath(): string {
  return ngx.prefix + 'state/keys.json';
}

// js_set $gw_apikey_live gateway.apiKeyLive;  the same answers as gateway.apiKey (handlers.ts),
// with the live entries. nginx calls it only for a key the build's map does not accept
// (gateway.apiKey said unknown_key) and, while some key of the map is revoked live (the flag
// file state/keys-revoked exists), instead of gateway.apiKey: the common request never gets here.
// In the admin location ($gw_keys_admin = 1) the same function answers the admin API (one
// export instead of two: every export costs every request about 700 instructions).
export function apiKeyLive(r: NginxHTTPRequest): string {
  const v = r.variables;
  if (v.gw_keys_admin === '1') {
    keysAdmin(r);
    return '';
  }
  const lookup = function (k: string): string {
    return liveLookup(v, k);
  };
  // nginx's candidate first (as gateway.apiKey's fast path takes it), the full extraction when
  // the key map and the live entries do not accept it
  const fast = v.gw_key_presented || v.gw_key_bearer;
  let status = fast ? decidePresentedKey(fast, lookup) : '';
  if (status !== 'ok' && status !== 'expired_key') {
    const key = extractApiKey(r.headersIn['Authorization'], r.headersIn[v.gw_key_header || 'X-API-Key']);
    if (key !== fast) {
      status = decidePresentedKey(key, lookup);
    }
  }
  // an accepted key leaves $gw_auth_status empty, as gateway.apiKey does ($gw_auth_outcome)
  if (status !== 'ok') {
    v.gw_auth_status = status;
  }
  return status;
}

function liveLookup(v: NginxVariables, key: string): string {
  const h = hashApiKey(key);
  v.gw_key_hash = h;
  const meta = v.gw_key_meta;
  if (meta === '!') {
    return 'unknown_key'; // revoked in keys.yaml (the build's map)
  }
  const d = liveDict();
  if (d.get('g') === undefined) {
    loadLiveKeys(d);
  }
  let m = parseKeyMeta(meta);
  const e = d.get(h);
  if (typeof e === 'string') {
    const now = nowSec();
    if (e.charAt(0) === 'r') {
      if (now >= parseInt(e.substring(1), 10)) {
        return 'unknown_key';
      }
    } else if (m === null) {
      m = liveMeta(e, now);
    }
  }
  if (m === null) {
    return 'unknown_key';
  }
  const expired = m.expires === 0 ? null : keyExpiry(m, nowSec());
  if (expired !== null) {
    return expired;
  }
  v.gw_client_id = m.client;
  v.gw_client_role = m.role;
  v.gw_client_tier = m.tier;
  return 'ok';
}

/** A live entry "k<client>|<role>|<tier>|<expires>|<revoke_at>|<id>" as KeyMeta; null once revoked. */
export function liveMeta(e: string, now: number): KeyMeta | null {
  if (e.charAt(0) !== 'k') {
    return null;
  }
  const p = e.substring(1).split('|');
  if (p.length !== 6) {
    return null;
  }
  const revokeAt = parseInt(p[4], 10);
  if (revokeAt > 0 && now >= revokeAt) {
    return null;
  }
  return parseKeyMeta(p[0] + '|' + p[1] + '|' + p[2] + '|' + p[3]);
}

/** "r" when some entry revokes a key of the map (the flag file exists), else "0". */
function summary(d: LiveDict): string {
  const all = d.items();
  for (let i = 0; i < all.length; i++) {
    if (all[i][0] !== 'g' && all[i][1].charAt(0) === 'r') {
      return 'r';
    }
  }
  return '0';
}

/** After a start the zone is empty: the persisted entries come back (first request, any worker). */
function loadLiveKeys(d: LiveDict): string {
  const p = statePath();
  let doc: { keys?: { [h: string]: string } } = {};
  let text: string | null = null;
  try {
    text = fs.readFileSync(p, 'utf8') as string;
  } catch (e) {
    text = null; // no live key yet
  }
  if (text !== null) {
    try {
      doc = JSON.parse(text);
    } catch (e) {
      // not marked loaded: the next request reads the file again (fix it, no restart needed)
      ngx.log(ngx.ERR, 'gatewayctl: live API keys: ' + p + ' is not JSON; only the build\'s key map applies');
      return '0';
    }
  }
  const ks = doc.keys || {};
  const hs = Object.keys(ks);
  for (let i = 0; i < hs.length; i++) {
    if (/^[0-9a-f]{64}$/.test(hs[i]) && typeof ks[hs[i]] === 'string') {
      d.set(hs[i], ks[hs[i]]);
    }
  }
  const g = summary(d);
  d.set('g', g);
  syncFlag(g);
  if (hs.length) {
    ngx.log(ngx.WARN, 'gatewayctl: live API keys: ' + hs.length + ' entr' + (hs.length === 1 ? 'y' : 'ies') + ' restored from ' + p);
  }
  return g;
}

/** The flag file nginx tests before choosing the handler: present while some "r" entry exists. */
function syncFlag(g: string): boolean {
  const f = ngx.prefix + 'state/keys-revoked';
  try {
    if (g === 'r') {
      fs.writeFileSync(f, '1');
    } else {
      try {
        fs.unlinkSync(f);
      } catch (e) {
        // not there
      }
    }
    return true;
  } catch (e) {
    ngx.log(ngx.ERR, 'gatewayctl: live API keys: cannot write ' + f + ': ' + e);
    return false;
  }
}

function persist(d: LiveDict): boolean {
  const p = statePath();
  const out: { [h: string]: string } = {};
  const all = d.items();
  for (let i = 0; i < all.length; i++) {
    if (all[i][0] !== 'g') {
      out[all[i][0]] = all[i][1];
    }
  }
  try {
    // hashes and identities only, never a key; readable by the workers' user alone, like keys.yaml
    fs.writeFileSync(p + '.tmp', JSON.stringify({ version: 1, keys: out }) + '\n', { mode: 0o600 });
    fs.renameSync(p + '.tmp', p);
    return true;
  } catch (e) {
    ngx.log(ngx.ERR, 'gatewayctl: live API keys: cannot write ' + p + ': ' + e);
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// the admin API: /admin/keys on the status listener (loopback only, bearer token)

function reply(r: NginxHTTPRequest, status: number, body: unknown): void {
  r.headersOut['Content-Type'] = 'application/json';
  r.headersOut['Cache-Control'] = 'no-store';
  r.return(status, JSON.stringify(body) + '\n');
}

function fail(r: NginxHTTPRequest, status: number, code: string, message: string, field: string | null): void {
  const e: { [k: string]: unknown } = { code: code, message: message };
  if (field !== null) {
    e.field = field;
  }
  reply(r, status, { error: e });
}

// (patterns inside the functions: module top-level code runs for every request)

interface Parsed {
  doc: { [k: string]: unknown } | null;
  field: string;
  message: string;
}

/** The JSON body with only `allowed` fields, or the first offending field. */
export function parseBody(text: string, allowed: string[]): Parsed {
  let doc: { [k: string]: unknown };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { doc: null, field: 'body', message: 'the body must be a JSON object' };
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return { doc: null, field: 'body', message: 'the body must be a JSON object' };
  }
  const keys = Object.keys(doc);
  for (let i = 0; i < keys.length; i++) {
    if (allowed.indexOf(keys[i]) < 0) {
      return { doc: null, field: keys[i], message: 'unknown field (' + allowed.join(', ') + ')' };
    }
  }
  return { doc: doc, field: '', message: '' };
}

/** The first bad field of a create/rotate body ("" when fine). */
export function badField(doc: { [k: string]: unknown }): { field: string; message: string } {
  const labels = ['name', 'role', 'tier'];
  for (let i = 0; i < labels.length; i++) {
    const x = doc[labels[i]];
    if ((x !== undefined || labels[i] === 'name') && (typeof x !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(x))) {
      if (!(labels[i] !== 'name' && x === '')) {
        return { field: labels[i], message: '1-64 of A-Z a-z 0-9 _ . -' };
      }
    }
  }
  if (doc.expires !== undefined && (typeof doc.expires !== 'number' || doc.expires !== Math.floor(doc.expires) || doc.expires < 0)) {
    return { field: 'expires', message: 'unix seconds (0: never)' };
  }
  return checkIds(doc);
}

function checkIds(doc: { [k: string]: unknown }): { field: string; message: string } {
  const hashes = ['hash', 'new_hash'];
  for (let i = 0; i < hashes.length; i++) {
    const x = doc[hashes[i]];
    if (x !== undefined && (typeof x !== 'string' || !/^[0-9a-f]{64}$/.test(x))) {
      return { field: hashes[i], message: 'a lowercase hex SHA-256 (64 characters)' };
    }
  }
  const ids = ['id', 'new_id'];
  for (let i = 0; i < ids.length; i++) {
    const x = doc[ids[i]];
    if (x !== undefined && (typeof x !== 'string' || !/^key_[0-9a-f]{12}$/.test(x))) {
      return { field: ids[i], message: 'key_ and 12 hex digits' };
    }
  }
  const secs = ['at', 'grace'];
  for (let i = 0; i < secs.length; i++) {
    const x = doc[secs[i]];
    if (x !== undefined && (typeof x !== 'number' || x !== Math.floor(x) || x < 0)) {
      return { field: secs[i], message: secs[i] === 'at' ? 'unix seconds' : 'seconds (0: at once)' };
    }
  }
  return { field: '', message: '' };
}

function randomHex(n: number): string {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString('hex');
}

function newKey(): string {
  const b = new Uint8Array(32);
  crypto.getRandomValues(b);
  return 'gw_live_' + Buffer.from(b).toString('base64url');
}

/** The identity a key has now (the build's map, else a live entry), or null. */
function currentMeta(v: NginxVariables, d: LiveDict, h: string, now: number): { meta: KeyMeta; live: string | null } | null {
  v.gw_key_hash = h;
  const e = d.get(h);
  const mapped = parseKeyMeta(v.gw_key_meta);
  if (mapped !== null) {
    if (typeof e === 'string' && e.charAt(0) === 'r' && now >= parseInt(e.substring(1), 10)) {
      return null;
    }
    return { meta: mapped, live: null };
  }
  const m = typeof e === 'string' ? liveMeta(e, now) : null;
  return m === null ? null : { meta: m, live: e as string };
}

function liveEntry(m: KeyMeta, revokeAt: number, id: string): string {
  return 'k' + m.client + '|' + m.role + '|' + m.tier + '|' + m.expires + '|' + revokeAt + '|' + id;
}

/** What GET /admin/keys lists for one entry (no key, ever). */
function entryView(h: string, e: string, now: number): { [k: string]: unknown } {
  const p = e.substring(1).split('|');
  if (e.charAt(0) === 'r') {
    const at = parseInt(p[0], 10);
    return { hash: h, id: p[1] || '', from: 'keys.yaml', state: now >= at ? 'revoked' : 'rotating', revoke_at: at };
  }
  const at = parseInt(p[4], 10);
  return {
    hash: h,
    id: p[5] || '',
    from: 'live',
    state: at > 0 && now >= at ? 'revoked' : at > 0 ? 'rotating' : 'active',
    name: p[0],
    role: p[1],
    tier: p[2],
    expires: parseInt(p[3], 10),
    revoke_at: at,
  };
}

/**
 * js_content gateway.keysAdmin (`location /admin/keys`, status listener, loopback only):
 *   GET  /admin/keys           the live entries (hash, id, state; never a key)
 *   POST /admin/keys           {"name","role"?,"tier"?,"expires"?,"id"?,"hash"?} → 201; without
 *                              "hash" the gateway makes the key and answers it (this once only)
 *   POST /admin/keys/revoke    {"hash","at"?,"id"?}  refused from `at` (unix s; default now)
 *   POST /admin/keys/rotate    {"hash","grace"?,"new_hash"?,"new_id"?} → 201: a new key with
 *                              the old one's identity; the old one refused after `grace` s
 * Every change is written to state/keys.json before the answer (nothing changes when that fails).
 */
function keysAdmin(r: NginxHTTPRequest): void {
  const v = r.variables;
  const auth = r.headersIn.Authorization || '';
  if (auth.indexOf('Bearer ') !== 0) {
    r.headersOut['WWW-Authenticate'] = 'Bearer';
    fail(r, 401, 'unauthorized', 'send Authorization: Bearer <admin token>', null);
    return;
  }
  if (cr.createHash('sha256').update(auth.substring(7)).digest('hex') !== v.gw_admin_token_sha256) {
    fail(r, 403, 'forbidden', 'wrong admin token', null);
    return;
  }
  const d = liveDict();
  if (d.get('g') === undefined) {
    loadLiveKeys(d);
  }
  const now = nowSec();
  const action = r.uri === '/admin/keys' ? '' : r.uri === '/admin/keys/revoke' ? 'revoke' : r.uri === '/admin/keys/rotate' ? 'rotate' : '?';
  if (action === '' && r.method === 'GET') {
    const list: unknown[] = [];
    const all = d.items();
    for (let i = 0; i < all.length; i++) {
      if (all[i][0] !== 'g') {
        list.push(entryView(all[i][0], all[i][1], now));
      }
    }
    list.sort(function (a: unknown, b: unknown): number {
      const x = (a as { hash: string }).hash;
      const y = (b as { hash: string }).hash;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    reply(r, 200, { keys: list });
    return;
  }
  if (action === '?' || r.method !== 'POST') {
    fail(r, 405, 'method_not_allowed', r.method + ' ' + r.uri + ' is not an admin API call', null);
    return;
  }
  const allowed = action === '' ? ['name', 'role', 'tier', 'expires', 'id', 'hash'] : action === 'revoke' ? ['hash', 'at', 'id'] : ['hash', 'grace', 'new_hash', 'new_id'];
  const p = parseBody(r.requestText || '', allowed);
  if (p.doc === null) {
    fail(r, 400, 'invalid_field', p.message, p.field);
    return;
  }
  const doc = p.doc;
  const bad = action === '' ? badField(doc) : checkIds(doc);
  if (bad.field !== '') {
    fail(r, 400, 'invalid_field', bad.message, bad.field);
    return;
  }
  if (action !== '' && doc.hash === undefined) {
    fail(r, 400, 'invalid_field', 'the SHA-256 of the key (gatewayctl keys list --json shows it)', 'hash');
    return;
  }
  // apply, persist, or undo: the answer says what is in force
  const undo: [string, string | undefined][] = [];
  const put = function (h: string, e: string): void {
    undo.push([h, d.get(h)]);
    d.set(h, e);
  };
  const commit = function (status: number, body: unknown): void {
    const before = d.get('g');
    const g = summary(d);
    d.set('g', g);
    if (!persist(d) || !syncFlag(g)) {
      for (let i = undo.length - 1; i >= 0; i--) {
        if (undo[i][1] === undefined) {
          d.delete(undo[i][0]);
        } else {
          d.set(undo[i][0], undo[i][1] as string);
        }
      }
      d.set('g', before || summary(d));
      syncFlag(summary(d));
      persist(d);
      fail(r, 500, 'not_persisted', 'the change could not be written to ' + statePath() + '; nothing changed', null);
      return;
    }
    // routes with an open_file_cache (steered ones, 1 s) may still hold "no flag file": the
    // answer waits until every such cache has looked again, so the revocation is in force
    // on every route when the call returns ($gw_keys_flag_wait: milliseconds, 0 = none)
    const wait = parseInt(v.gw_keys_flag_wait || '0', 10);
    if (before !== 'r' && g === 'r' && wait > 0) {
      setTimeout(function () {
        reply(r, status, body);
      }, wait);
      return;
    }
    reply(r, status, body);
  };
  if (action === '') {
    let key: string | null = null;
    let h = doc.hash as string | undefined;
    if (h === undefined) {
      key = newKey();
      h = hashApiKey(key);
    }
    v.gw_key_hash = h;
    const e0 = d.get(h);
    if (v.gw_key_meta !== '' || e0 !== undefined) {
      fail(r, 409, 'exists', 'a key with this hash exists', 'hash');
      return;
    }
    const id = (doc.id as string | undefined) || 'key_' + randomHex(6);
    const m: KeyMeta = { client: doc.name as string, role: (doc.role as string) || '', tier: (doc.tier as string) || '', expires: (doc.expires as number) || 0 };
    put(h, liveEntry(m, 0, id));
    ngx.log(ngx.WARN, 'gatewayctl: live API key ' + id + ' (' + m.client + ') created');
    const out: { [k: string]: unknown } = { id: id, hash: h, name: m.client, role: m.role, tier: m.tier, expires: m.expires };
    if (key !== null) {
      out.key = key;
    }
    commit(201, out);
    return;
  }
  const h = doc.hash as string;
  const cur = currentMeta(v, d, h, now);
  if (cur === null) {
    fail(r, 404, 'not_found', 'no key in force with this hash', 'hash');
    return;
  }
  if (action === 'revoke') {
    const at = typeof doc.at === 'number' ? (doc.at as number) : now;
    const id = (doc.id as string | undefined) || '';
    if (cur.live !== null) {
      const p0 = cur.live.substring(1).split('|');
      put(h, liveEntry(cur.meta, Math.max(at, 1), p0[5] || id));
    } else {
      put(h, 'r' + at + '|' + id);
    }
    ngx.log(ngx.WARN, 'gatewayctl: API key ' + (id || h.substring(0, 12)) + ' revoked live' + (at > now ? ' from ' + at : ''));
    commit(200, { hash: h, revoke_at: at });
    return;
  }
  // rotate
  let key: string | null = null;
  let nh = doc.new_hash as string | undefined;
  if (nh === undefined) {
    key = newKey();
    nh = hashApiKey(key);
  }
  v.gw_key_hash = nh;
  if (v.gw_key_meta !== '' || d.get(nh) !== undefined) {
    fail(r, 409, 'exists', 'a key with this hash exists', 'new_hash');
    return;
  }
  const at = now + (typeof doc.grace === 'number' ? (doc.grace as number) : 0);
  const nid = (doc.new_id as string | undefined) || 'key_' + randomHex(6);
  put(nh, liveEntry(cur.meta, 0, nid));
  if (cur.live !== null) {
    const p1 = cur.live.substring(1).split('|');
    put(h, liveEntry(cur.meta, Math.max(at, 1), p1[5] || ''));
  } else {
    put(h, 'r' + at + '|');
  }
  ngx.log(ngx.WARN, 'gatewayctl: API key of ' + cur.meta.client + ' rotated live: new ' + nid + ', old refused from ' + at);
  const out: { [k: string]: unknown } = { id: nid, hash: nh, name: cur.meta.client, replaced: h, old_revoke_at: at };
  if (key !== null) {
    out.key = key;
  }
  commit(201, out);
}

// API key store: only SHA-256 hashes and metadata are kept on disk (YAML, mode 0600,
// atomic temp-file + rename writes). The plaintext key is printed once by `keys create`
// and `keys rotate`, never stored. renderKeyMap() turns the store into the nginx `map`
// include that the njs `gateway.apiKey` handler relies on (docs/njs-auth.md).
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, stringify, type Node as YamlNode } from 'yaml';
import { formatBytes, readBounded } from '../config/load.ts';

export const KEY_PREFIX = 'gw_live_';
export const KEYS_FILE_VERSION = 1;
export const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const HASH_RE = /^[0-9a-f]{64}$/;
export const ID_RE = /^key_[0-9a-f]{12}$/;
/** base64url MD5 of a key that carries its id (nginx's secure_link checks it: renderNativeKeyMaps) */
export const MD5_RE = /^[A-Za-z0-9_-]{22}$/;
/**
 * A key that carries its record's id: `gw_live_` + the id's 12 hex digits + 32 random bytes in
 * base64url. nginx looks the id up and checks the key's MD5 itself, without njs; a key without
 * an id (made before ids were part of keys, or created live by the admin API) is checked by njs.
 */
export const NATIVE_KEY_PARTS = { id: '[0-9a-f]{12}', secret: '[A-Za-z0-9_-]{43}' } as const;
export const NATIVE_KEY_RE = new RegExp(`^${KEY_PREFIX}(${NATIVE_KEY_PARTS.id})${NATIVE_KEY_PARTS.secret}$`);

export interface ApiKeyRecord {
  id: string; // key_<12 hex>
  name: string; // client name, forwarded as X-Gateway-Client
  hash: string; // sha256 hex of the full key
  md5: string | null; // base64url MD5 of the full key, for keys that carry their id (NATIVE_KEY_RE)
  role: string; // '' when unset
  tier: string; // '' when unset
  created: string; // ISO 8601
  expires: string | null; // ISO 8601
  revoked: string | null; // ISO 8601 (revocation time)
  replacedBy: string | null; // id of the key that rotated this one out
}

export interface KeyFile {
  version: number;
  keys: ApiKeyRecord[];
}

export class KeyStoreError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly line: number | null = null,
    readonly col: number | null = null,
  ) {
    super(line === null ? `${file}: ${message}` : `${file}:${line}:${col}: ${message}`);
    this.name = 'KeyStoreError';
  }
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new key carrying its record's id (`key_<12 hex>`), so nginx can check it without njs. */
export function generateKey(id: string): string {
  if (!ID_RE.test(id)) throw new Error(`invalid key id ${JSON.stringify(id)}`);
  return KEY_PREFIX + idDigits(id) + randomBytes(32).toString('base64url');
}

/**
 * The MD5 nginx's secure_link checks a key against, base64url. MD5 only ever sees a key of 32
 * random bytes the gateway made (NATIVE_KEY_RE): what protects the key is preimage resistance,
 * which MD5 keeps (collisions need an attacker who chooses both inputs). Stored next to the
 * SHA-256 as the SHA-256 is: neither gives the key back.
 */
export function md5Key(key: string): string {
  return createHash('md5').update(key, 'utf8').digest('base64url');
}

export function generateId(): string {
  return 'key_' + randomBytes(6).toString('hex');
}

export function validateLabel(kind: string, value: string): void {
  if (!NAME_RE.test(value)) {
    throw new Error(`invalid ${kind} ${JSON.stringify(value)}: use 1-64 of A-Z a-z 0-9 _ . -`);
  }
}

// Dates: ISO 8601 (2027-01-31, 2027-01-31T12:00:00Z) or relative to now: 30m, 12h, 90d, 2w.
export function parseWhen(value: string, now: Date): Date {
  const rel = /^(\d+)([smhdw])$/.exec(value.trim());
  if (rel) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[rel[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return new Date(now.getTime() + Number(rel[1]) * unit * 1000);
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) {
    throw new Error(`invalid date ${JSON.stringify(value)}: use ISO 8601 (2027-01-31T00:00:00Z) or 30d/12h/2w`);
  }
  const t = Date.parse(value.trim());
  if (Number.isNaN(t)) throw new Error(`invalid date ${JSON.stringify(value)}`);
  return new Date(t);
}

export function isActive(k: ApiKeyRecord, now: Date): boolean {
  if (k.revoked !== null && Date.parse(k.revoked) <= now.getTime()) return false;
  if (k.expires !== null && Date.parse(k.expires) <= now.getTime()) return false;
  return true;
}

// The key a name refers to: not revoked, not rotated out.
export function currentKey(file: KeyFile, name: string, now: Date): ApiKeyRecord | undefined {
  return file.keys.find((k) => k.name === name && k.replacedBy === null && isActive(k, now));
}

// ---------- loading ----------

function pos(lc: LineCounter, node: YamlNode | null | undefined): { line: number | null; col: number | null } {
  const offset = node && node.range ? node.range[0] : 0;
  const p = lc.linePos(offset);
  return { line: p.line, col: p.col };
}

/**
 * Largest keys file gatewayctl reads: about 250,000 keys (a record is some 270 bytes). The
 * size is checked before the file is read or parsed.
 */
export const KEYS_FILE_MAX_BYTES = 64 * 1024 * 1024;

/** Why a keys file is refused before it is read (it names the size only, never the contents). */
export function keysFileTooLarge(size: number): string {
  return `keys file is ${formatBytes(size)}; gatewayctl reads at most ${formatBytes(KEYS_FILE_MAX_BYTES)}`;
}

function tooLarge(file: string, size: number): KeyStoreError {
  return new KeyStoreError(keysFileTooLarge(size), file, 1, 1);
}

/** The keys file's text, refused with a positioned KeyStoreError when over KEYS_FILE_MAX_BYTES (errno errors pass through). */
export function readKeysText(file: string, display = file): string {
  const r = readBounded(file, KEYS_FILE_MAX_BYTES);
  if ('tooLarge' in r) throw tooLarge(display, r.tooLarge);
  return r.text;
}

export async function loadKeys(file: string): Promise<KeyFile> {
  let text: string;
  try {
    text = readKeysText(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: KEYS_FILE_VERSION, keys: [] };
    throw e;
  }
  return parseKeys(text, file);
}

/**
 * The keys file as records. Files in the layout `gatewayctl keys` writes (one `field: value`
 * per line) are read by a line scanner without building a YAML tree; anything else (a hand
 * edit in another YAML style, or any problem at all) goes through the full YAML parser, which
 * reports the first problem at its file:line:col.
 */
export function parseKeys(text: string, file: string): KeyFile {
  if (text.length > KEYS_FILE_MAX_BYTES || Buffer.byteLength(text) > KEYS_FILE_MAX_BYTES) throw tooLarge(file, Buffer.byteLength(text));
  return scanKeys(text) ?? parseKeysYaml(text, file);
}

const FIELDS = ['id', 'name', 'hash', 'md5', 'role', 'tier', 'created', 'expires', 'revoked', 'replacedBy'] as const;
type Field = (typeof FIELDS)[number];
const FIELD_SET = new Set<string>(FIELDS);
/** `  - field: value` (a new entry) or `    field: value` */
const ENTRY_LINE = /^(  - |    )([A-Za-z][A-Za-z0-9]*): (.*)$/;
/** a plain scalar without spaces or indicators… */
const PLAIN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
/** …that YAML's core schema (the yaml package's default) reads as something other than a string */
const PLAIN_NOT_STRING = /^(?:true|false|null|0o[0-7]+|0x[0-9a-f]+|[0-9]+(?:\.[0-9]*)?(?:e[-+]?[0-9]+)?)$/i;
/** a plain ISO 8601 timestamp (a string in YAML 1.2: no timestamp type) */
const PLAIN_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
/** a double-quoted scalar without escapes */
const QUOTED = /^"([^"\\]*)"$/;
const DATE_FIELDS = new Set<string>(['created', 'expires', 'revoked']);

/** The value of a scanned scalar: a string, null for `null`, undefined when not in the simple subset. */
function scanScalar(v: string): string | null | undefined {
  if (v === 'null') return null;
  if (v.charCodeAt(0) === 34 /* " */) {
    const q = QUOTED.exec(v);
    return q ? q[1] : undefined;
  }
  if (PLAIN_DATE.test(v)) return v;
  if (!PLAIN.test(v) || PLAIN_NOT_STRING.test(v)) return undefined;
  return v;
}

/**
 * The fast path of parseKeys: the records when the text is in the line layout the writer
 * produces and every record is valid, else null (the caller then parses it as YAML, which
 * gives positioned errors). Accepts a subset of what the YAML path accepts, with the same result.
 */
export function scanKeys(text: string): KeyFile | null {
  const keys: ApiKeyRecord[] = [];
  const ids = new Set<string>();
  let version = false;
  let inKeys = false;
  let rec: Record<string, string | null> | null = null;
  const finish = (): boolean => {
    if (rec === null) return true;
    const r = validRecord(rec);
    if (r === null || ids.has(r.id)) return false;
    ids.add(r.id);
    keys.push(r);
    return true;
  };
  let at = 0;
  const end = text.length;
  while (at < end) {
    let nl = text.indexOf('\n', at);
    if (nl < 0) nl = end;
    const line = text.slice(at, nl);
    at = nl + 1;
    if (line.length === 0) continue;
    const c0 = line.charCodeAt(0);
    if (c0 === 35 /* # */) continue;
    if (c0 !== 32 /* space */) {
      if (line === 'version: 1' && !version) version = true;
      else if (line === 'keys:' && !inKeys) inKeys = true;
      else return null;
      if (!finish()) return null;
      rec = null;
      continue;
    }
    const m = ENTRY_LINE.exec(line);
    if (m === null) {
      if (/^ *(#.*)?$/.test(line)) continue;
      return null;
    }
    if (!inKeys) return null;
    if (m[1] === '  - ') {
      if (!finish()) return null;
      rec = {};
    } else if (rec === null) {
      return null;
    }
    const field = m[2];
    if (!FIELD_SET.has(field) || field in rec) return null;
    const v = scanScalar(m[3]);
    if (v === undefined) return null;
    rec[field] = v;
  }
  if (!finish() || !version) return null;
  if (!inKeys) return null;
  return { version: KEYS_FILE_VERSION, keys };
}

/** A scanned record checked as the YAML path checks it, or null when any check fails. */
function validRecord(r: Record<string, string | null>): ApiKeyRecord | null {
  const get = (f: Field, required: boolean, re?: RegExp): string | null | undefined => {
    const v = r[f];
    if (v === undefined || v === null || v === '') return required ? undefined : null;
    if (re && !re.test(v)) return undefined;
    if (DATE_FIELDS.has(f) && Number.isNaN(Date.parse(v))) return undefined;
    return v;
  };
  const id = get('id', true, ID_RE);
  const name = get('name', true, NAME_RE);
  const hash = get('hash', true, HASH_RE);
  const md5 = get('md5', false, MD5_RE);
  const role = get('role', false, NAME_RE);
  const tier = get('tier', false, NAME_RE);
  const created = get('created', true);
  const expires = get('expires', false);
  const revoked = get('revoked', false);
  const replacedBy = get('replacedBy', false, ID_RE);
  if (!id || !name || !hash || !created || md5 === undefined || role === undefined || tier === undefined) return null;
  if (expires === undefined || revoked === undefined || replacedBy === undefined) return null;
  return { id, name, hash, md5, role: role ?? '', tier: tier ?? '', created, expires, revoked, replacedBy };
}

/** parseKeys through the YAML parser, with positions for every error. */
function parseKeysYaml(text: string, file: string): KeyFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const p = lc.linePos(err.pos[0]);
    throw new KeyStoreError(err.message.split('\n')[0], file, p.line, p.col);
  }
  const root = doc.contents;
  if (root === null) return { version: KEYS_FILE_VERSION, keys: [] };
  const bad = (node: YamlNode | null | undefined, msg: string): never => {
    const p = pos(lc, node ?? root);
    throw new KeyStoreError(msg, file, p.line, p.col);
  };
  if (!isMap(root)) bad(root, 'keys file must be a mapping with `version` and `keys`');
  const map = root as import('yaml').YAMLMap;
  const versionNode = map.get('version', true) as YamlNode | undefined;
  if (!isScalar(versionNode) || versionNode.value !== KEYS_FILE_VERSION) {
    bad(versionNode, `version must be ${KEYS_FILE_VERSION}`);
  }
  const keysNode = map.get('keys', true) as YamlNode | undefined;
  if (keysNode === undefined || (isScalar(keysNode) && keysNode.value === null)) return { version: KEYS_FILE_VERSION, keys: [] };
  if (!isSeq(keysNode)) return bad(keysNode, '`keys` must be a list');
  const keys: ApiKeyRecord[] = [];
  const ids = new Set<string>();
  for (const item of keysNode.items as YamlNode[]) {
    if (!isMap(item)) bad(item, 'each key entry must be a mapping');
    const m = item as import('yaml').YAMLMap;
    for (const pair of m.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!FIELD_SET.has(k)) {
        bad(pair.key as YamlNode, `unknown field ${JSON.stringify(k)}`);
      }
    }
    const str = (field: string, required: boolean, re?: RegExp, what?: string): string | null => {
      const n = m.get(field, true) as YamlNode | undefined;
      if (n === undefined || (isScalar(n) && (n.value === null || n.value === ''))) {
        if (required) bad(item, `missing ${field}`);
        return null;
      }
      if (!isScalar(n) || typeof n.value !== 'string') return bad(n, `${field} must be a string`);
      const v = n.value as string;
      // a malformed hash may be a plaintext key pasted in by mistake: never echo it
      if (re && !re.test(v)) bad(n, field === 'hash' || field === 'md5' ? `${field} is not ${what}` : `${field} ${JSON.stringify(v)} is not ${what}`);
      return v;
    };
    const date = (field: string, required: boolean): string | null => {
      const v = str(field, required);
      if (v !== null && Number.isNaN(Date.parse(v))) bad(m.get(field, true) as YamlNode, `${field} is not a date`);
      return v;
    };
    const rec: ApiKeyRecord = {
      id: str('id', true, ID_RE, 'a key id (key_ + 12 hex)')!,
      name: str('name', true, NAME_RE, 'a valid name ([A-Za-z0-9_.-]{1,64})')!,
      hash: str('hash', true, HASH_RE, 'a lowercase sha256 hex digest')!,
      md5: str('md5', false, MD5_RE, 'a base64url md5 digest (22 characters)'),
      role: str('role', false, NAME_RE, 'a valid role ([A-Za-z0-9_.-]{1,64})') ?? '',
      tier: str('tier', false, NAME_RE, 'a valid tier ([A-Za-z0-9_.-]{1,64})') ?? '',
      created: date('created', true)!,
      expires: date('expires', false),
      revoked: date('revoked', false),
      replacedBy: str('replacedBy', false, ID_RE, 'a key id'),
    };
    if (ids.has(rec.id)) bad(m.get('id', true) as YamlNode, `duplicate id ${rec.id}`);
    ids.add(rec.id);
    keys.push(rec);
  }
  return { version: KEYS_FILE_VERSION, keys };
}

// ---------- saving ----------

/** A scalar as YAML's stringify writes it: plain when it reads back as the same string, else double-quoted. */
function yamlScalar(v: string | null): string {
  if (v === null) return 'null';
  if (scanScalar(v) === v) return v;
  // the fields are validated ([A-Za-z0-9_.:+-]), so this is a JSON-compatible double-quoted scalar
  if (!/^[\x20-\x7e]*$/.test(v)) return stringify(v, { lineWidth: 0 }).trimEnd();
  return JSON.stringify(v);
}

/**
 * The keys file text: a header comment, `version`, and one `field: value` line per field of
 * each key (the layout parseKeys scans without a YAML tree). Valid YAML; for the usual values
 * the same text YAML's own stringify wrote, without building a document.
 */
export function serializeKeys(data: KeyFile): string {
  return serializeKeyChunks(data).join('');
}

/** serializeKeys in pieces of up to 2,000 keys, so a large store is written without one big string. */
function serializeKeyChunks(data: KeyFile): string[] {
  const head = `# gatewayctl API keys: SHA-256 hashes and metadata only; managed by \`gatewayctl keys\`.\nversion: ${data.version}\n`;
  if (data.keys.length === 0) return [`${head}keys: []\n`];
  const chunks = [`${head}keys:\n`];
  for (let i = 0; i < data.keys.length; i += 2000) {
    const lines: string[] = [];
    for (const k of data.keys.slice(i, i + 2000)) {
      let first = true;
      for (const f of FIELDS) {
        // a key without an id of its own has no md5: no line, so older files keep their text
        if (f === 'md5' && k.md5 === null) continue;
        lines.push(`${first ? '  - ' : '    '}${f}: ${yamlScalar(k[f])}`);
        first = false;
      }
    }
    chunks.push(lines.join('\n') + '\n');
  }
  return chunks;
}

export async function saveKeys(file: string, data: KeyFile): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    for (const chunk of serializeKeyChunks(data)) await fh.write(chunk, null, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

// Serialises read-modify-write cycles of concurrent `keys` commands on one file with an
// exclusive lock file next to it. A lock older than `staleMs` is taken over.
export async function withKeysLock<T>(file: string, fn: () => Promise<T>, opts = { waitMs: 5000, staleMs: 30_000 }): Promise<T> {
  const lock = `${path.resolve(file)}.lock`;
  await mkdir(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + opts.waitMs;
  for (;;) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const st = await stat(lock).catch(() => null);
      if (st && Date.now() - st.mtimeMs > opts.staleMs) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new KeyStoreError(`locked by ${lock} (another keys command is running?)`, file);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

// ---------- operations (pure on KeyFile) ----------

export interface CreateOptions {
  name: string;
  role?: string;
  tier?: string;
  expires?: Date | null;
}

export function createKey(file: KeyFile, opts: CreateOptions, now: Date): { key: string; record: ApiKeyRecord } {
  validateLabel('name', opts.name);
  if (opts.role) validateLabel('role', opts.role);
  if (opts.tier) validateLabel('tier', opts.tier);
  if (opts.expires && opts.expires.getTime() <= now.getTime()) throw new Error('expiry date is in the past');
  if (currentKey(file, opts.name, now)) {
    throw new Error(`a key named ${opts.name} already exists (use \`keys rotate ${opts.name}\`)`);
  }
  let id = generateId();
  while (file.keys.some((k) => k.id === id)) id = generateId();
  const key = generateKey(id);
  const record: ApiKeyRecord = {
    id,
    name: opts.name,
    hash: hashKey(key),
    md5: md5Key(key),
    role: opts.role ?? '',
    tier: opts.tier ?? '',
    created: now.toISOString(),
    expires: opts.expires ? opts.expires.toISOString() : null,
    revoked: null,
    replacedBy: null,
  };
  file.keys.push(record);
  return { key, record };
}

export function findKeys(file: KeyFile, nameOrId: string): ApiKeyRecord[] {
  if (ID_RE.test(nameOrId)) return file.keys.filter((k) => k.id === nameOrId);
  return file.keys.filter((k) => k.name === nameOrId);
}

// Revoke by id (that key) or by name (every not-yet-revoked key of that name).
export function revokeKey(file: KeyFile, nameOrId: string, now: Date): ApiKeyRecord[] {
  const found = findKeys(file, nameOrId);
  if (found.length === 0) throw new Error(`no key with name or id ${JSON.stringify(nameOrId)}`);
  const changed = found.filter((k) => k.revoked === null || Date.parse(k.revoked) > now.getTime());
  for (const k of changed) k.revoked = now.toISOString();
  return changed;
}

// New key for a name. The old key is revoked now, or kept valid until `graceUntil`.
export function rotateKey(
  file: KeyFile,
  name: string,
  now: Date,
  graceUntil: Date | null = null,
): { key: string; record: ApiKeyRecord; old: ApiKeyRecord } {
  const old = currentKey(file, name, now);
  if (!old) throw new Error(`no active key named ${JSON.stringify(name)}`);
  if (graceUntil && graceUntil.getTime() <= now.getTime()) throw new Error('grace period end is in the past');
  old.replacedBy = 'key_000000000000'; // placeholder so createKey sees no current key
  const created = createKey(
    file,
    { name, role: old.role || undefined, tier: old.tier || undefined, expires: old.expires ? new Date(old.expires) : null },
    now,
  );
  old.replacedBy = created.record.id;
  old.revoked = (graceUntil ?? now).toISOString();
  return { key: created.key, record: created.record, old };
}

// ---------- nginx map ----------

function unixSeconds(iso: string | null): number {
  return iso === null ? 0 : Math.floor(Date.parse(iso) / 1000);
}

/** A key's client, role and tier, checked again before they are printed into a map value. */
function checkMapLabels(k: ApiKeyRecord): void {
  if (k.name !== '' && !NAME_RE.test(k.name)) throw new Error(`key ${k.id}: invalid name ${JSON.stringify(k.name)}`);
  if (k.role !== '' && !NAME_RE.test(k.role)) throw new Error(`key ${k.id}: invalid role ${JSON.stringify(k.role)}`);
  if (k.tier !== '' && !NAME_RE.test(k.tier)) throw new Error(`key ${k.id}: invalid tier ${JSON.stringify(k.tier)}`);
}

// The nginx include for the API-key lookup. Only active keys; every value is validated
// against NAME_RE / HASH_RE again here so nothing from the file can inject nginx syntax.
// A key revoked in the future (rotation grace) stays in, with that time as its expiry.
//
// opts.native: the native lane's maps too (renderNativeKeyMaps), in the same include, so the one
// file a build or `keys map --out` writes always holds both views of the store: a revoked key
// can never stay in one of them after the other was refreshed.
export function renderKeyMap(keys: ApiKeyRecord[], now: Date, variables = { from: '$gw_key_hash', to: '$gw_key_meta' }, opts: { revokedMarks?: boolean; native?: boolean } = {}): string {
  const lines: string[] = [
    '# Generated by gatewayctl from the API key store; do not edit.',
    '# sha256(key) -> "client|role|tier|expires" (expires: unix seconds, 0 = never), or "client" alone',
    '# for a key with no role, no tier and no expiry',
    `map ${variables.from} ${variables.to} {`,
    '  default "";',
  ];
  const active = keys.filter((k) => isActive(k, now));
  const seen = new Set<string>();
  const entries: string[] = [];
  for (const k of active) {
    if (!HASH_RE.test(k.hash)) throw new Error(`key ${k.id}: invalid hash`);
    checkMapLabels(k);
    if (seen.has(k.hash)) throw new Error(`key ${k.id}: duplicate hash`);
    seen.add(k.hash);
    const expires = keyExpiry(k);
    // the common key (no role, tier or expiry) maps to its client name alone: njs's split then
    // makes one string, not four (≈ 1,700 instructions a request, njs/lib/handlers.ts apiKeyFast)
    const meta = k.role === '' && k.tier === '' && expires === 0 ? k.name : `${k.name}|${k.role}|${k.tier}|${expires}`;
    entries.push(`  "${k.hash}" "${meta}";`);
  }
  // with live keys (admin_api), a key revoked here maps to "!": refused even when the running
  // gateway's live state (state/keys.json) still holds it, so the store decides for builds
  if (opts.revokedMarks) {
    for (const k of keys) {
      if (k.revoked !== null && !isActive(k, now) && HASH_RE.test(k.hash) && !seen.has(k.hash)) {
        seen.add(k.hash);
        entries.push(`  "${k.hash}" "!";`);
      }
    }
  }
  // sorted by hash: every entry starts with its distinct lowercase-hex hash, so the default
  // code-unit sort of the lines is the hash order (the same as localeCompare on the hashes)
  entries.sort();
  for (const e of entries) lines.push(e);
  lines.push('}');
  return lines.join('\n') + '\n' + (opts.native ? renderNativeKeyMaps(keys, now) : '');
}

/**
 * The native lane's part of the key map include (src/features/auth/render.ts, nativeKeyMaps;
 * renderKeyMap with `native`): for each active key that carries its id and has an MD5
 * (nativeRecords), the id's "md5[,expires]" (nginx's secure_link
 * refuses an expired one by itself) and, keyed by the id secure_link has checked, the client,
 * role and tier. Only active keys: a revoked or unknown id finds nothing here and goes to njs,
 * which names the reason. Every value is validated again (no nginx syntax from the file).
 */
export function renderNativeKeyMaps(keys: ApiKeyRecord[], now: Date): string {
  const check: string[] = [];
  const client: string[] = [];
  const role: string[] = [];
  const tier: string[] = [];
  const seen = new Set<string>();
  for (const k of nativeRecords(keys, now)) {
    if (!ID_RE.test(k.id)) throw new Error(`key ${JSON.stringify(k.id)}: invalid id`);
    if (!MD5_RE.test(k.md5!)) throw new Error(`key ${k.id}: invalid md5`);
    if (!NAME_RE.test(k.name)) throw new Error(`key ${k.id}: invalid name ${JSON.stringify(k.name)}`);
    checkMapLabels(k);
    const id = idDigits(k.id);
    if (seen.has(id)) throw new Error(`key ${k.id}: duplicate id`);
    seen.add(id);
    const expires = keyExpiry(k);
    check.push(`  "${id}" "${k.md5}${expires ? `,${expires}` : ''}";`);
    client.push(`  "${id}" "${k.name}";`);
    if (k.role !== '') role.push(`  "${id}" "${k.role}";`);
    if (k.tier !== '') tier.push(`  "${id}" "${k.tier}";`);
  }
  const map = (from: string, to: string, entries: string[]) => [`map ${from} ${to} {`, '  default "";', ...entries.sort(), '}'];
  return [
    '# keys that carry their id, checked by nginx (secure_link): key id -> "md5,expires"',
    '# (base64url MD5 of the key; expires: unix seconds, none = never)',
    ...map('$gw_key_native_id', '$gw_key_native_check', check),
    '# checked key id -> client, role, tier',
    ...map('$gw_key_verified_id', '$gw_key_native_client', client),
    ...map('$gw_key_verified_id', '$gw_key_native_role', role),
    ...map('$gw_key_verified_id', '$gw_key_native_tier', tier),
  ].join('\n') + '\n';
}

/** Unix seconds a key stops working (its expiry or a future revocation: rotation grace), 0 = never. */
function keyExpiry(k: ApiKeyRecord): number {
  return k.expires === null ? (k.revoked === null ? 0 : unixSeconds(k.revoked)) : k.revoked === null ? unixSeconds(k.expires) : Math.min(unixSeconds(k.expires), unixSeconds(k.revoked));
}

/** The records the native lane's maps hold: active, with an MD5. */
function nativeRecords(keys: ApiKeyRecord[], now: Date): ApiKeyRecord[] {
  return keys.filter((k) => k.md5 !== null && isActive(k, now));
}

/** The 12 hex digits of a record id (`key_<12 hex>`): what a key carries and the native maps are keyed by. */
function idDigits(id: string): string {
  return id.slice('key_'.length);
}

/** The ids of the native lane's maps (they size map_hash_* with the key map's hashes). */
export function nativeKeyIds(keys: ApiKeyRecord[], now: Date): string[] {
  return nativeRecords(keys, now).map((k) => idDigits(k.id));
}

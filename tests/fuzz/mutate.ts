// Seeded mutations of gateway.yaml documents for the validate-vs-nginx fuzzer: scalars set
// to boundary values, long strings, odd characters; keys removed, duplicated or renamed;
// blocks and lists emptied; list items duplicated; and values injected at fields where nginx
// is strict (regexes, addresses, CIDRs, host names, durations and sizes of the state plane,
// traffic, budgets and metrics). Pure and deterministic: the same seed gives the same text.
import { isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';

/** mulberry32: small, fast, good enough for choosing mutations */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

const longHost = (n: number) => Array.from({ length: Math.ceil(n / 50) }, (_, i) => `l${i}${'a'.repeat(48)}`).join('.').slice(0, n).replace(/\.$/, 'a');

export const NUMBERS: readonly unknown[] = [
  0, -1, 1, 2, 7, 15, 16, 255, 256, 1023, 1024, 65535, 65536, 99999, 1048576, 2147483647, 2147483648, 99999999999,
  9007199254740993, 1.5, 1e21, -0.5,
];

export const STRINGS: readonly string[] = [
  '', ' ', 'a', '0', '00', '-', '*', '_', 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(65), 'x'.repeat(300), 'x'.repeat(1100), 'x'.repeat(4100),
  '$'.repeat(400), '$x', '${gw_dollar}', '"', "'", '\\', '{', '}', ';', '#x', 'a b', 'é', 'ÿ', '\u2028',
  '[::1]', '::1', '::ffff:1.2.3.4', 'fffff', '1:2:3:4:5:6:7:8:9', '10.0.0.0/99', '10.0.0.0/33', '::/129', '10.0.0.256', '1.2.3',
  '1.2.3.4', '127.0.0.1', 'all', '0r/s', '1r/s', '999999r/m', '99999999999r/s', '0s', '1ms', '1s1m', '1m1s', '1h30m',
  '99999999999w', '5', '0k', '1k', '8k', '1m', '1g', '1024m', '2g', '99999999999g', '9999g', '/', '//', '/a b', '/%', '/$x', '/a;b', '/a{b}',
  '*.a', 'a..b', '-a', 'a-', 'A.EXAMPLE', 'http://a', 'https://a:0', 'https://a:99999', `https://${longHost(240)}`,
  'unix:/tmp/x.sock', 'x:0', 'x:99999', 'x:65535', '[::1]:80', '[fffff::]:80', '[::1]', 'localhost:80', '999.1.1.1:80',
  longHost(130), longHost(253), longHost(300), 'a'.repeat(64), '(?s)^/a.b', '(?m)^/a$', '(?x) ^/a  b # c', '(?<=a+)b',
  '(?<=ab)c', '(?<=a|bc)d', '\\u0041', '\\x{41}', '\\x{100}', '(?i)^/A', '[', '(', ')', 'a{2,1}', 'a++', '(?>a)', '\\Qa.b\\E',
  '\\k<x>', '(?<n>a)\\k<n>', 'a{1,70000}', '^/api/(\\d+)$', '\\8', '[]', '[^]', '\\p{L}', '\\pL', '(?<1a>x)', '(?P<n>x)',
  '\\ca', '\\c', 'a{,3}', '(?<n>a)(?<n>b)', '\\R', '\\h+', '(?|(a)|(b))', '(?(1)a|b)', '(*UTF)a', '\\N', '\\Ca', '[[:alpha:]]',
  '[[:foo:]]', '\\', 'a\\', '(?#c)a', '\\Z\\z\\A', 'x*+', '(?=a)*', '\\0', '\\o{777}', '\\e',
];

/** Field paths (with a placeholder: '#' a list index, '*' an existing key) where nginx is strict, and the kind of values to put there. */
const TARGETS: { path: (string | number)[]; values: readonly unknown[] }[] = [
  { path: ['routes', '#', 'match'], values: STRINGS.filter((s) => /[\\()[\]{}?*+|^$]/.test(s)).map((regex) => ({ regex })) },
  { path: ['routes', '#', 'match', 'host'], values: STRINGS },
  { path: ['routes', '#', 'match', 'prefix'], values: STRINGS.filter((s) => s.startsWith('/')) },
  { path: ['routes', '#', 'cors'], values: STRINGS.map((o) => ({ origins: [o, 'https://b.example'] })) },
  { path: ['routes', '#', 'set_headers'], values: STRINGS.map((v) => ({ 'X-Fuzz': v })) },
  { path: ['routes', '#', 'access'], values: STRINGS.map((c) => ({ allow: [c] })) },
  { path: ['listeners', '#', 'address'], values: STRINGS },
  { path: ['listeners', '#', 'server_names'], values: STRINGS.map((h) => [h]) },
  { path: ['listeners', '#', 'port'], values: NUMBERS },
  { path: ['global', 'trusted_proxies'], values: STRINGS.map((c) => [c]) },
  { path: ['global', 'status'], values: STRINGS.map((listen) => ({ listen })) },
  { path: ['limits', 'rate', 'fz'], values: STRINGS.map((rate) => ({ rate, size: pick(rng(rate.length), ['10m', '0', '1k', '99999999g']) })) },
  { path: ['upstreams', 'fz'], values: STRINGS.map((a) => ({ servers: [a] })) },
  { path: ['caches', 'fz'], values: STRINGS.map((v) => ({ size: v, inactive: v })) },
  // the state plane, traffic, budgets and metrics: durations, counts, paths and names at their edges
  { path: ['upstreams', 'fz'], values: [...STRINGS, ...NUMBERS].map((v) => ({ servers: ['127.0.0.1:9001'], health_check: { path: typeof v === 'string' ? v : '/', interval: v, timeout: v } })) },
  { path: ['upstreams', 'fz'], values: NUMBERS.map((v) => ({ servers: ['127.0.0.1:9001', '127.0.0.1:9002'], health_check: { path: '/h', rise: v, fall: v } })) },
  { path: ['upstreams', 'fz'], values: [...STRINGS, ...NUMBERS].map((v) => ({ servers: ['127.0.0.1:9001'], circuit_breaker: { failures: typeof v === 'number' ? v : 5, window: v, open_for: v } })) },
  { path: ['upstreams', 'fz'], values: STRINGS.map((v) => ({ servers: ['127.0.0.1:9001', '127.0.0.1:9002'], sticky: { cookie: v } })) },
  { path: ['routes', '#', 'traffic'], values: [...STRINGS.map((v) => ({ match: [{ header: 'X-Fz', value: v, upstream: 'fz' }] })), ...NUMBERS.map((v) => ({ split: { fz: v } })), {}, { split: {} }, { match: [] }, { sticky: 'client_ip' }] },
  { path: ['routes', '#', 'retries'], values: [...NUMBERS.map((tries) => ({ tries })), ...STRINGS.map((timeout) => ({ tries: 2, timeout }))] },
  { path: ['routes', '#', 'timeouts'], values: STRINGS.map((v) => ({ connect: v, read: v })) },
  { path: ['routes', '#', 'max_body'], values: [...STRINGS, ...NUMBERS] },
  { path: ['metrics'], values: [...STRINGS.map((v) => ({ path: v })), ...NUMBERS.map((v) => ({ buckets: [v], max_series: v })), ...STRINGS.map((v) => ({ dict_size: v })), {}, { exclude_routes: [] }] },
  { path: ['limits', 'tokens', 'fz'], values: [...NUMBERS.map((v) => ({ key: 'client_ip', window: 'hour', tokens: v, default_max_tokens: v })), ...STRINGS.map((v) => ({ key: v, window: v, tokens: 1000 }))] },
  { path: ['models'], values: STRINGS.map((id) => [{ id, upstream: 'fz' }]) },
  // auth, response headers, answers, rewrites, TLS, logs and connection limits: names and texts
  // that reach header names, variables, quoted strings and file paths
  { path: ['routes', '#', 'auth'], values: [...STRINGS.map((key_header) => ({ methods: ['api_key'], key_header })), ...STRINGS.map((role) => ({ methods: ['api_key'], roles: [role] })), ...STRINGS.map((v) => ({ methods: ['jwt'], claim_values: { [v || 'x']: v } }))] },
  { path: ['auth', 'identity_headers'], values: [...STRINGS.map((client) => ({ client })), ...STRINGS.map((v) => ({ role: v, tier: false }))] },
  ...['issuer', 'audience', 'leeway', 'role_claim', 'tier_claim', 'client_claim'].map((f) => ({ path: ['auth', 'jwt', '*', f], values: STRINGS })),
  { path: ['auth', 'jwt', '*', 'claim_values'], values: STRINGS.map((v) => ({ [v || 'x']: v })) },
  { path: ['auth', 'jwt', '*', 'required_claims'], values: STRINGS.map((v) => [v]) },
  { path: ['upstreams', '*', 'servers'], values: STRINGS.map((a) => [a, '127.0.0.1:9001']) },
  { path: ['routes', '#'], values: [...NUMBERS.map((status) => ({ name: 'fz', match: { exact: '/fz' }, respond: { status } })), ...STRINGS.map((body) => ({ name: 'fz', match: { prefix: '/fz/' }, respond: { status: 200, body } }))] },
  { path: ['auth', 'api_keys'], values: STRINGS.map((header) => ({ file: 'keys.yaml', header })) },
  { path: ['routes', '#', 'response_headers'], values: [...STRINGS.map((v) => ({ set: { 'X-Fz': v } })), ...STRINGS.map((h) => ({ set: { [h]: 'v' } })), ...STRINGS.map((h) => ({ remove: [h] }))] },
  { path: ['listeners', '#', 'response_headers'], values: [...STRINGS.map((v) => ({ set: { 'X-Fz': { value: v, always: false } } })), ...STRINGS.map((h) => ({ remove: [h] }))] },
  { path: ['listeners', '#', 'security_headers'], values: STRINGS.map((content_security_policy) => ({ preset: 'strict', content_security_policy })) },
  { path: ['routes', '#', 'set_headers'], values: STRINGS.map((h) => ({ [h]: 'v' })) },
  { path: ['routes', '#', 'rewrite'], values: STRINGS },
  { path: ['listeners', '#', 'tls'], values: [...STRINGS.map((v) => ({ cert: v, key: v })), ...NUMBERS.map((max_age) => ({ cert: 'c.pem', key: 'k.pem', hsts: { max_age } }))] },
  { path: ['global', 'access_log'], values: [...STRINGS.map((path) => ({ path })), false, { format: 'combined' }] },
  { path: ['limits', 'conn', 'fz'], values: [...NUMBERS.map((max) => ({ max })), ...STRINGS.map((size) => ({ max: 10, size }))] },
];

interface Site {
  path: (string | number)[];
  node: YamlNode;
}

function sites(doc: Document): Site[] {
  const out: Site[] = [];
  const visit = (node: unknown, p: (string | number)[]) => {
    if (!node) return;
    out.push({ path: p, node: node as YamlNode });
    if (isMap(node)) for (const pair of node.items) visit(pair.value, [...p, isScalar(pair.key) ? String(pair.key.value) : String(pair.key)]);
    else if (isSeq(node)) node.items.forEach((x, i) => visit(x, [...p, i]));
  };
  visit(doc.contents, []);
  return out;
}

function boundary(r: () => number, original: unknown): unknown {
  const roll = r();
  if (typeof original === 'number' && roll < 0.6) return pick(r, NUMBERS);
  if (typeof original === 'string' && roll < 0.3) {
    switch (Math.floor(r() * 5)) {
      case 0:
        return original.repeat(Math.ceil(4100 / Math.max(1, original.length)));
      case 1:
        return `${original}${pick(r, ['$', '"', '\\', ' ', '.', ';', '{', 'é', '0'])}`;
      case 2:
        return original.toUpperCase();
      case 3:
        return `${original}${original}`;
      default:
        return original.slice(0, Math.floor(original.length / 2));
    }
  }
  if (roll < 0.7) return pick(r, STRINGS);
  if (roll < 0.85) return pick(r, NUMBERS);
  return pick(r, [true, false, null, [], {}]);
}

/** One to three mutations of `text`; `describe` says what was done (for the failure report). */
export function mutate(text: string, seed: number): { text: string; describe: string } {
  const r = rng(seed);
  const steps = 1 + Math.floor(r() * r() * 3); // mostly one
  let out = { text, describe: '' };
  for (let i = 0; i < steps; i++) {
    const m = mutateOnce(out.text, r);
    out = { text: m.text, describe: out.describe ? `${out.describe}; ${m.describe}` : m.describe };
  }
  return out;
}

function mutateOnce(text: string, r: () => number): { text: string; describe: string } {
  const doc = parseDocument(text, { uniqueKeys: false });
  const all = sites(doc).filter((s) => s.path.length > 0);
  const op = r();
  const show = (v: unknown) => {
    const s = JSON.stringify(v) ?? String(v);
    return s.length > 80 ? `${s.slice(0, 60)}… (${s.length} chars)` : s;
  };
  if (op < 0.45) {
    const s = pick(r, all.filter((x) => isScalar(x.node)));
    const v = boundary(r, (s.node as { value: unknown }).value);
    doc.setIn(s.path, v);
    return { text: doc.toString({ lineWidth: 0 }), describe: `set ${s.path.join('.')} = ${show(v)}` };
  }
  if (op < 0.55) {
    const s = pick(r, all);
    doc.deleteIn(s.path);
    return { text: doc.toString({ lineWidth: 0 }), describe: `remove ${s.path.join('.')}` };
  }
  if (op < 0.6) {
    // a block or list emptied: what is left after deleting its last entry by hand
    const s = pick(r, all.filter((x) => (isMap(x.node) || isSeq(x.node)) && (x.node as { items: unknown[] }).items.length));
    if (!s) return { text, describe: 'no-op' };
    const empty = isMap(s.node) ? {} : [];
    doc.setIn(s.path, doc.createNode(empty));
    return { text: doc.toString({ lineWidth: 0 }), describe: `empty ${s.path.join('.')}` };
  }
  if (op < 0.7) {
    const seqs = all.filter((x) => isSeq(x.node) && x.node.items.length);
    const maps = all.filter((x) => isMap(x.node) && x.node.items.length);
    if (seqs.length && (r() < 0.5 || !maps.length)) {
      const s = pick(r, seqs);
      const seq = s.node as import('yaml').YAMLSeq;
      const i = Math.floor(r() * seq.items.length);
      seq.items.push(doc.createNode((seq.items[i] as YamlNode).toJSON()));
      return { text: doc.toString({ lineWidth: 0 }), describe: `duplicate ${[...s.path, i].join('.')}` };
    }
    const s = pick(r, maps);
    const map = s.node as import('yaml').YAMLMap;
    const pair = pick(r, map.items);
    const key = isScalar(pair.key) ? String(pair.key.value) : 'k';
    const newKey = pick(r, [`${key}_2`, key.toUpperCase(), `${key}-x`, key]);
    map.items.push(doc.createPair(newKey, (pair.value as YamlNode | null)?.toJSON?.() ?? null) as never);
    return { text: doc.toString({ lineWidth: 0 }), describe: `copy ${[...s.path, key].join('.')} as ${newKey}` };
  }
  // inject a value at a field where nginx is strict
  const t = pick(r, TARGETS);
  const path = [...t.path];
  const hole = path.indexOf('#');
  if (hole >= 0) {
    const list = doc.getIn(path.slice(0, hole)) as unknown;
    const n = isSeq(list) ? list.items.length : 0;
    if (!n) return { text, describe: 'no-op' };
    path[hole] = Math.floor(r() * n);
  }
  // '*': one of the map's existing keys (a provider, an upstream, a zone the config defines)
  const star = path.indexOf('*');
  if (star >= 0) {
    const map = doc.getIn(path.slice(0, star)) as unknown;
    const keys = isMap(map) ? map.items.map((x) => (isScalar(x.key) ? String(x.key.value) : '')).filter(Boolean) : [];
    if (!keys.length) return { text, describe: 'no-op' };
    path[star] = pick(r, keys);
  }
  const v = pick(r, t.values);
  doc.setIn(path, doc.createNode(v));
  return { text: doc.toString({ lineWidth: 0 }), describe: `inject ${path.join('.')} = ${show(v)}` };
}

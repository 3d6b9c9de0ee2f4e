// Generators for the scale figures (scripts/scale.ts) and the scale test
// (tests/unit/scale.test.ts): a large API key store, written by the store's own serializer,
// and a gateway.yaml with many routes and upstreams.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hashKey, KEY_PREFIX, md5Key, serializeKeys, type ApiKeyRecord } from '../src/keys/store.ts';

/**
 * The plaintext key of index i: deterministic, distinct from anything `keys create` makes (those
 * are random), in the form `keys create` makes (its id, then 43 characters), so nginx checks it
 * itself. An index past the store's end gives a key with an id no record has.
 */
export function scaleKey(i: number): string {
  return `${KEY_PREFIX}${i.toString(16).padStart(12, '0')}scale${String(i).padStart(38, '0')}`;
}

/** Writes a store of `n` active keys (client-0 … client-<n-1>) and returns one plaintext key. */
export function generateScaleKeys(file: string, n: number): { sample: { key: string; name: string }; records: ApiKeyRecord[] } {
  const records: ApiKeyRecord[] = new Array(n);
  let sample = { key: '', name: '' };
  for (let i = 0; i < n; i++) {
    const id = i.toString(16).padStart(12, '0');
    const key = scaleKey(i);
    if (i === Math.floor(n / 2)) sample = { key, name: `client-${i}` };
    records[i] = {
      id: `key_${id}`,
      name: `client-${i}`,
      hash: hashKey(key),
      md5: md5Key(key),
      role: i % 10 === 0 ? 'admin' : '',
      tier: i % 3 === 0 ? 'gold' : '',
      created: '2026-01-01T00:00:00.000Z',
      expires: i % 7 === 0 ? '2099-01-01T00:00:00.000Z' : null,
      revoked: null,
      replacedBy: null,
    };
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, serializeKeys({ version: 1, keys: records }), { mode: 0o600 });
  return { sample, records };
}

/**
 * A gateway.yaml with `routes` routes over `upstreams` upstreams (route i: prefix /r<i>/ to
 * upstream u<i mod upstreams>; a mix of exact/method matches, rate limits, retries and
 * prefix stripping), listening on 127.0.0.1:port. With apiKeys every route takes an API key
 * from keys.yaml next to the config; `server` puts that one server in every upstream.
 */
export function scaleConfig(o: { routes: number; upstreams: number; port: number; apiKeys: boolean; server?: string }): string {
  const out: string[] = [
    'version: 1',
    'global: { status: false, worker_processes: 1 }',
    'listeners:',
    `  - { name: main, port: ${o.port}, address: 127.0.0.1 }`,
    'limits:',
    '  rate:',
    '    per_ip: { key: client_ip, rate: 50r/s, burst: 100 }',
    ...(o.apiKeys ? ['    per_client: { key: client_id, rate: 100r/s, burst: 200 }', 'auth:', '  api_keys: { file: keys.yaml }'] : []),
    'upstreams:',
  ];
  for (let u = 0; u < o.upstreams; u++) {
    const a = 20000 + ((u * 2) % 40000);
    out.push(`  u${u}:`, `    servers: [${o.server ?? `127.0.0.1:${a}, 127.0.0.1:${a + 1}`}]`);
    if (u % 4 === 1) out.push('    balance: least_conn', '    keepalive: 16');
  }
  out.push('routes:');
  for (let i = 0; i < o.routes; i++) {
    const up = `u${i % o.upstreams}`;
    if (i % 10 === 9) {
      out.push(`  - name: r${i}`, `    match: { exact: /v1/r${i}, methods: [POST] }`, `    upstream: ${up}`, '    max_body: 2m');
    } else {
      out.push(`  - name: r${i}`, `    match: { prefix: /r${i}/ }`, `    upstream: ${up}`);
      if (i % 3 === 0) out.push('    strip_prefix: true');
      if (i % 5 === 0) out.push('    retries: { tries: 2, timeout: 5s }');
    }
    out.push(`    rate_limits: [${o.apiKeys ? 'per_client' : 'per_ip'}]`);
    if (o.apiKeys) out.push('    auth: api_key');
  }
  return out.join('\n') + '\n';
}

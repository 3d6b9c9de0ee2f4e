// `gatewayctl keys <action>`: create | list | revoke | rotate | map.
// Only this module prints; the store logic lives in src/keys/store.ts.
import { writeFile, rename, mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  createKey,
  KeyStoreError,
  loadKeys,
  parseWhen,
  renderKeyMap,
  revokeKey,
  rotateKey,
  saveKeys,
  withKeysLock,
} from '../keys/store.ts';
import { adminToken, callAll, driftLines, failureText, targets, type CallResult, type Target } from './fanout.ts';

export interface KeysOptions {
  file?: string; // keys file, default keys.yaml
  name?: string; // create/rotate: key name; revoke: name or id
  target?: string; // revoke/rotate positional argument (NAME|ID)
  role?: string;
  tier?: string;
  expires?: string; // ISO 8601 or 30d/12h/2w
  graceUntil?: string; // rotate: keep the old key valid until then
  out?: string; // map: write the include here instead of stdout
  json?: boolean; // list/create/rotate: machine-readable output
  /** create/revoke/rotate: also apply the change to the running gateway(s) through the admin API */
  live?: boolean;
  config?: string; // gateway.yaml: its status listener when no --endpoint/--dns/--url is given
  url?: string;
  endpoint?: string[];
  dns?: string;
  tokenEnv?: string;
  now?: Date; // tests
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
}

export const KEYS_USAGE = `usage:
  gatewayctl keys create --name NAME [--role ROLE] [--tier TIER] [--expires DATE] [--file keys.yaml]
  gatewayctl keys list [--json] [--file keys.yaml]
  gatewayctl keys revoke NAME|ID [--file keys.yaml]
  gatewayctl keys rotate NAME [--grace-until DATE] [--file keys.yaml]
  gatewayctl keys map [--out FILE] [--file keys.yaml]
  gatewayctl keys live [--endpoint HOST:PORT ... | --dns NAME:PORT] [--json]
  gatewayctl keys sync [--endpoint HOST:PORT ... | --dns NAME:PORT]
--live (create, revoke, rotate): write keys.yaml, then apply the change to every running
replica through the admin API (--endpoint HOST:PORT, repeatable; --dns NAME:PORT; default:
gateway.yaml's status listener); effective on the next request, no rebuild or reload
DATE: ISO 8601 (2027-01-31, 2027-01-31T12:00:00Z) or relative (30m, 12h, 90d, 2w)`;

export async function run(action: string, opts: KeysOptions = {}): Promise<number> {
  const liveTargets = async (): Promise<{ ts: Target[]; token: string }> => {
    const ts = await targets(opts, 'keys');
    if (typeof ts === 'string') throw new Error(ts.replace(/^keys: /, ''));
    const tok = adminToken(opts, 'keys');
    if (typeof tok === 'string') throw new Error(tok.replace(/^keys: /, ''));
    return { ts, token: tok.token };
  };
  const out = opts.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = opts.stderr ?? ((s: string) => void process.stderr.write(s));
  const file = opts.file ?? 'keys.yaml';
  const now = opts.now ?? new Date();
  try {
    switch (action) {
      case 'create': {
        const name = opts.name ?? opts.target;
        if (!name) throw new UsageError('keys create needs --name NAME');
        const expires = opts.expires ? parseWhen(opts.expires, now) : null;
        const live = opts.live ? await liveTargets() : null; // before the store changes
        const { key, record } = await withKeysLock(file, async () => {
          const data = await loadKeys(file);
          const created = createKey(data, { name, role: opts.role, tier: opts.tier, expires }, now);
          await saveKeys(file, data);
          return created;
        });
        if (opts.json) {
          out(JSON.stringify({ key, id: record.id, name: record.name, expires: record.expires }) + '\n');
        } else {
          out(`${key}\n`);
          err(`created ${record.id} (${record.name}); the key above is shown only once, store it now\n`);
        }
        if (!live) return 0;
        const body = { name: record.name, id: record.id, hash: record.hash, ...(record.role ? { role: record.role } : {}), ...(record.tier ? { tier: record.tier } : {}), ...(record.expires ? { expires: Math.floor(Date.parse(record.expires) / 1000) } : {}) };
        return report('create', record.id, await callAll(live.ts, live.token, 'POST', '/admin/keys', body), err, [409]);
      }
      case 'list': {
        const data = await loadKeys(file);
        const rows = data.keys.map((k) => ({
          id: k.id,
          name: k.name,
          hash: k.hash.slice(0, 12),
          role: k.role,
          tier: k.tier,
          created: k.created,
          expires: k.expires,
          status: status(k, now),
          // who checks it on the hot path: nginx for a key carrying its id, njs for an older one
          // (rotate it to move it to nginx; docs/auth.md, "How it runs in nginx")
          checkedBy: k.md5 === null ? 'njs' : 'nginx',
        }));
        if (opts.json) {
          out(JSON.stringify(rows, null, 2) + '\n');
          return 0;
        }
        const header = ['ID', 'NAME', 'HASH', 'ROLE', 'TIER', 'STATUS', 'CHECKED BY', 'CREATED', 'EXPIRES'];
        const table = [header, ...rows.map((r) => [r.id, r.name, r.hash, r.role || '-', r.tier || '-', r.status, r.checkedBy, r.created, r.expires ?? '-'])];
        const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
        for (const row of table) out(row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() + '\n');
        return 0;
      }
      case 'revoke': {
        const target = opts.target ?? opts.name;
        if (!target) throw new UsageError('keys revoke needs NAME or ID');
        const live = opts.live ? await liveTargets() : null;
        const { changed, all } = await withKeysLock(file, async () => {
          const data = await loadKeys(file);
          const res = revokeKey(data, target, now);
          await saveKeys(file, data);
          return { changed: res, all: data.keys };
        });
        if (changed.length === 0) err(`${target}: already revoked\n`);
        for (const k of changed) err(`revoked ${k.id} (${k.name})\n`);
        if (!live) return 0;
        // also a key revoked in the store before: the replicas may still accept it
        const gone = changed.length ? changed : all.filter((k) => (k.id === target || k.name === target) && k.revoked !== null);
        let code = 0;
        for (const k of gone) {
          const at = Math.floor(Date.parse(k.revoked ?? now.toISOString()) / 1000);
          code = Math.max(code, report('revoke', k.id, await callAll(live.ts, live.token, 'POST', '/admin/keys/revoke', { hash: k.hash, id: k.id, at }), err, [404]));
        }
        return code;
      }
      case 'rotate': {
        const name = opts.target ?? opts.name;
        if (!name) throw new UsageError('keys rotate needs NAME');
        const grace = opts.graceUntil ? parseWhen(opts.graceUntil, now) : null;
        const live = opts.live ? await liveTargets() : null;
        const { key, record, old } = await withKeysLock(file, async () => {
          const data = await loadKeys(file);
          const res = rotateKey(data, name, now, grace);
          await saveKeys(file, data);
          return res;
        });
        if (opts.json) {
          out(JSON.stringify({ key, id: record.id, name: record.name, replaced: old.id, oldValidUntil: old.revoked }) + '\n');
        } else {
          out(`${key}\n`);
          err(
            `rotated ${name}: new ${record.id}; old ${old.id} ` +
              (grace ? `stays valid until ${old.revoked}` : 'revoked now') +
              '; the key above is shown only once\n',
          );
        }
        if (!live) return 0;
        const graceSec = grace ? Math.max(0, Math.ceil((grace.getTime() - now.getTime()) / 1000)) : 0;
        return report('rotate', record.id, await callAll(live.ts, live.token, 'POST', '/admin/keys/rotate', { hash: old.hash, grace: graceSec, new_hash: record.hash, new_id: record.id }), err, [409]);
      }
      case 'sync': {
        // every replica to keys.yaml: keys it does not accept yet are added live, keys revoked
        // (or rotating out) in the store are revoked there; one request per key and replica
        const live = await liveTargets();
        const data = await loadKeys(file);
        let bad = 0;
        let applied = 0;
        for (const k of data.keys) {
          const expired = k.expires !== null && Date.parse(k.expires) <= now.getTime();
          if (k.revoked !== null) {
            const at = Math.floor(Date.parse(k.revoked) / 1000);
            for (const r of await callAll(live.ts, live.token, 'POST', '/admin/keys/revoke', { hash: k.hash, id: k.id, at })) {
              if (r.status === 200) applied++;
              else if (r.status !== 404) (bad++, err(`${failureText(r)}\n`));
            }
          } else if (!expired) {
            const body = { name: k.name, id: k.id, hash: k.hash, ...(k.role ? { role: k.role } : {}), ...(k.tier ? { tier: k.tier } : {}), ...(k.expires ? { expires: Math.floor(Date.parse(k.expires) / 1000) } : {}) };
            for (const r of await callAll(live.ts, live.token, 'POST', '/admin/keys', body)) {
              if (r.status === 201) (applied++, err(`${r.target}: added ${k.id} (${k.name})\n`));
              else if (r.status !== 409) (bad++, err(`${failureText(r)}\n`));
            }
          }
        }
        err(`keys sync: ${applied} change(s) applied on ${live.ts.length} replica(s)${bad ? `, ${bad} failed` : ''}\n`);
        return bad ? 1 : 0;
      }
      case 'live': {
        // every replica's live entries, compared with each other and with keys.yaml
        const live = await liveTargets();
        const results = await callAll(live.ts, live.token, 'GET', '/admin/keys');
        const ok = results.filter((r) => r.status === 200);
        for (const r of results) if (r.status !== 200) err(`keys live: ${failureText(r)}\n`);
        const data = await loadKeys(file).catch(() => null);
        const byHash = new Map((data?.keys ?? []).map((k) => [k.hash, k]));
        type Entry = { hash: string; id: string; from: string; state: string; name?: string; revoke_at: number };
        const views = new Map<string, Set<string>>();
        const notInStore = new Set<string>();
        for (const r of ok) {
          const entries = ((r.body?.keys as Entry[] | undefined) ?? []);
          views.set(r.target, new Set(entries.map((e) => `${e.id || e.hash.slice(0, 12)} ${e.state}${e.state === 'rotating' ? ` until ${new Date(e.revoke_at * 1000).toISOString()}` : ''}`)));
          for (const e of entries) {
            const k = byHash.get(e.hash);
            if (data && (!k || (e.state === 'active' && k.revoked !== null && Date.parse(k.revoked) <= now.getTime()))) notInStore.add(`${e.id || e.hash.slice(0, 12)} (${e.state} live, ${k ? 'revoked' : 'absent'} in ${file})`);
          }
        }
        const drift = driftLines(views);
        if (opts.json) {
          out(JSON.stringify({ replicas: Object.fromEntries(ok.map((r) => [r.target, r.body?.keys])), drift, store: [...notInStore] }, null, 2) + '\n');
        } else {
          for (const r of ok) {
            out(`${r.target}\n`);
            const entries = ((r.body?.keys as Entry[] | undefined) ?? []);
            if (!entries.length) out('  (no live change)\n');
            for (const e of entries) out(`  ${(e.id || '-').padEnd(16)} ${e.hash.slice(0, 12)}  ${e.from.padEnd(9)} ${e.state}${e.name ? ` ${e.name}` : ''}\n`);
          }
          for (const l of drift) err(`drift: ${l}\n`);
          for (const l of notInStore) err(`differs from the store: ${l}\n`);
        }
        return ok.length < results.length || drift.length || notInStore.size ? 1 : 0;
      }
      case 'map': {
        const data = await loadKeys(file);
        // with the native lane's maps: the include a build writes, whole
        const text = renderKeyMap(data.keys, now, undefined, { native: true });
        if (opts.out) {
          await mkdir(path.dirname(path.resolve(opts.out)), { recursive: true });
          const tmp = `${opts.out}.${process.pid}.tmp`;
          await writeFile(tmp, text, { mode: 0o600 });
          await rename(tmp, opts.out);
        } else {
          out(text);
        }
        return 0;
      }
      default:
        throw new UsageError(`unknown keys action ${JSON.stringify(action)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`keys: ${e.message}\n${KEYS_USAGE}\n`);
      return 2;
    }
    if (e instanceof KeyStoreError) {
      err(`keys: ${e.message}\n`);
      return 1;
    }
    err(`keys: ${(e as Error).message}\n`);
    return 1;
  }
}

class UsageError extends Error {}

/** Per replica: taken, or why not (statuses in `same` mean the replica already had it). */
function report(what: string, id: string, results: CallResult[], err: (s: string) => void, same: number[]): number {
  let bad = 0;
  for (const r of results) {
    if (r.status >= 200 && r.status < 300) err(`${r.target}: ${what} ${id}: applied\n`);
    else if (same.includes(r.status)) err(`${r.target}: ${what} ${id}: already so\n`);
    else {
      bad++;
      err(`${failureText(r)}\n`);
    }
  }
  if (bad) err(`keys ${what}: ${bad} of ${results.length} replicas did not take the change (keys.yaml has it: \`gatewayctl keys sync\` with the same replicas applies it there)\n`);
  return bad ? 1 : 0;
}

function status(k: { revoked: string | null; expires: string | null; replacedBy: string | null }, now: Date): string {
  if (k.revoked !== null && Date.parse(k.revoked) <= now.getTime()) return 'revoked';
  if (k.expires !== null && Date.parse(k.expires) <= now.getTime()) return 'expired';
  if (k.replacedBy !== null) return 'rotating';
  return 'active';
}

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
DATE: ISO 8601 (2027-01-31, 2027-01-31T12:00:00Z) or relative (30m, 12h, 90d, 2w)`;

export async function run(action: string, opts: KeysOptions = {}): Promise<number> {
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
        return 0;
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
        }));
        if (opts.json) {
          out(JSON.stringify(rows, null, 2) + '\n');
          return 0;
        }
        const header = ['ID', 'NAME', 'HASH', 'ROLE', 'TIER', 'STATUS', 'CREATED', 'EXPIRES'];
        const table = [header, ...rows.map((r) => [r.id, r.name, r.hash, r.role || '-', r.tier || '-', r.status, r.created, r.expires ?? '-'])];
        const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
        for (const row of table) out(row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() + '\n');
        return 0;
      }
      case 'revoke': {
        const target = opts.target ?? opts.name;
        if (!target) throw new UsageError('keys revoke needs NAME or ID');
        const changed = await withKeysLock(file, async () => {
          const data = await loadKeys(file);
          const res = revokeKey(data, target, now);
          await saveKeys(file, data);
          return res;
        });
        if (changed.length === 0) err(`${target}: already revoked\n`);
        for (const k of changed) err(`revoked ${k.id} (${k.name})\n`);
        return 0;
      }
      case 'rotate': {
        const name = opts.target ?? opts.name;
        if (!name) throw new UsageError('keys rotate needs NAME');
        const grace = opts.graceUntil ? parseWhen(opts.graceUntil, now) : null;
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
        return 0;
      }
      case 'map': {
        const data = await loadKeys(file);
        const text = renderKeyMap(data.keys, now);
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

function status(k: { revoked: string | null; expires: string | null; replacedBy: string | null }, now: Date): string {
  if (k.revoked !== null && Date.parse(k.revoked) <= now.getTime()) return 'revoked';
  if (k.expires !== null && Date.parse(k.expires) <= now.getTime()) return 'expired';
  if (k.replacedBy !== null) return 'rotating';
  return 'active';
}

// Golden cases of `build --target k8s`: tests/golden-k8s/<case>/gateway.yaml beside
// expected/ (the exact kustomize directory). Regenerate with UPDATE_GOLDEN=1 and review the
// diff like code. Two values follow sources other than the case and are checked here, not
// stored: the njs bundle inside the ConfigMap (it must be the current bundle), the
// ConfigMap's name suffix (the hash of its data) and the pod template's config hash (the
// sha256 of the ConfigMap and Secret it mounts).
// Every case is also validated against the Kubernetes schemas, and its config volume — laid
// out as kubelet mounts it — passes real `nginx -t`.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/build/compile.ts';
import { NJS_BUNDLE_PATH, njsBundleText } from '../../src/build/njs.ts';
import { compileK8s } from '../../src/commands/build-k8s.ts';
import { configHash, CONFIG_HASH_ANNOTATION, dataKey } from '../../src/features/kubernetes/manifests.ts';
import { formatDiagnostic } from '../../src/model/diagnostics.ts';
import { findNginx, preparePrefix, testConfig } from '../../src/runtime/nginx/index.ts';
import { byKind, mountConfigVolume, parseObjects, validateObjects, type K8sObject } from './helpers.ts';

const UPDATE = process.env.UPDATE_GOLDEN === '1';
const ROOT = 'tests/golden-k8s';
const cases = readdirSync(ROOT).filter((d) => existsSync(path.join(ROOT, d, 'gateway.yaml'))).sort();

/** The files of the mounted volume (path → text) from the objects, as the Deployment projects them. */
function mounted(objects: Record<string, K8sObject>): { config: Record<string, string>; secret: Record<string, string> } {
  const [cm] = byKind(objects, 'ConfigMap');
  const [secret] = byKind(objects, 'Secret');
  const out = { config: {} as Record<string, string>, secret: {} as Record<string, string> };
  for (const src of byKind(objects, 'Deployment')[0].spec.template.spec.volumes[0].projected.sources) {
    for (const item of (src.configMap ?? src.secret).items) {
      if (src.configMap) out.config[item.path] = cm.data[item.key];
      else out.secret[item.path] = Buffer.from(secret.data[item.key], 'base64').toString('utf8');
    }
  }
  return out;
}

/** Replace what follows other sources than the case (checked here) by placeholders. */
function stable(files: Record<string, string>): Record<string, string> {
  const objects = parseObjects(files);
  const vol = mounted(objects);
  // a config that loads njs carries the current bundle; one that does not, none
  const njs = /^load_module modules\/ngx_http_js_module\.so;$/m.test(vol.config['nginx.conf']);
  // (the bundle exports only the handlers the config calls: tests/golden.test.ts checks which)
  const bundle = njs ? njsBundleText([...(vol.config[NJS_BUNDLE_PATH] ?? '').matchAll(/^ {2}([A-Za-z]\w*): gw_\1,?$/gm)].map((x) => x[1])) : undefined;
  expect(vol.config[NJS_BUNDLE_PATH], 'the ConfigMap carries the current njs bundle').toBe(bundle);
  const hash = byKind(objects, 'Deployment')[0].spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION];
  expect(hash, 'the pod template hash is the sha256 of what it mounts').toBe(configHash(vol.config, vol.secret));
  // the ConfigMap's name carries the hash of its data (the bundle included)
  const cmName: string = byKind(objects, 'ConfigMap')[0].metadata.name;
  expect(cmName.slice(-10), 'the ConfigMap is named by its content').toBe(configHash(vol.config, {}).slice(0, 10));
  const out: Record<string, string> = {};
  for (const [rel, text] of Object.entries(files)) {
    out[rel] = text
      .replaceAll(cmName, `${cmName.slice(0, -10)}(hash of its data)`)
      .replace(new RegExp(`^  ${dataKey(NJS_BUNDLE_PATH).replace('.', '\\.')}: \\|[-+]?\\n(?:(?: {4}.*)?\\n)*`, 'm'), `  ${dataKey(NJS_BUNDLE_PATH)}: (the current njs bundle)\n`)
      .replace(/("njs\/gateway\.js": ")([0-9a-f]{64})(")/, (_all, a: string, h: string, b: string) => {
        expect(h).toBe(sha256(bundle ?? ''));
        return `${a}(sha256 of the current njs bundle)${b}`;
      })
      .replace(`${CONFIG_HASH_ANNOTATION}: ${hash}`, `${CONFIG_HASH_ANNOTATION}: (sha256 of the ConfigMap and Secret data)`);
  }
  return out;
}

describe.each(cases)('k8s golden %s', (name) => {
  const dir = path.join(ROOT, name);

  it('renders exactly the expected kustomize directory, valid against the Kubernetes schemas', () => {
    const r = compileK8s(path.join(dir, 'gateway.yaml'), { env: {} });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic)).toEqual([]);
    expect(validateObjects(parseObjects(r.k8s!))).toEqual([]);
    const files = stable(r.k8s!);
    const exp = path.join(dir, 'expected');
    if (UPDATE) {
      rmSync(exp, { recursive: true, force: true });
      mkdirSync(exp, { recursive: true });
      for (const [rel, text] of Object.entries(files)) writeFileSync(path.join(exp, rel), text);
    }
    expect(Object.keys(files).sort()).toEqual(readdirSync(exp).sort());
    for (const rel of Object.keys(files)) expect(files[rel], `${exp}/${rel}`).toBe(readFileSync(path.join(exp, rel), 'utf8'));
  });

  it('its config volume, mounted as kubelet does, passes nginx -t', async () => {
    const r = compileK8s(path.join(dir, 'gateway.yaml'), { env: {} });
    const objects = parseObjects(r.k8s!);
    const volume = mountConfigVolume(objects, { '"/dev/stdout"': '"logs/access.log"' });
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'gw-k8s-prefix-'));
    try {
      const loc = await findNginx({});
      await preparePrefix(prefix, loc.modulesDir, { dirs: JSON.parse(mounted(objects).config['manifest.json']).prefixDirs });
      const res = await testConfig(loc, prefix, path.join(volume, 'nginx.conf'));
      expect(res.ok, res.output).toBe(true);
    } finally {
      rmSync(volume, { recursive: true, force: true });
      rmSync(prefix, { recursive: true, force: true });
    }
  });
});

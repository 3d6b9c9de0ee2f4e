// The Kubernetes target's output as a cluster would take it: each manifest parsed and
// validated against the Kubernetes OpenAPI schemas (kubernetes-models), and the config
// volume laid out as kubelet does (projected ConfigMap + Secret items, files as symlinks
// into `..data/`), so real nginx can run it.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type K8sObject = Record<string, any>;

const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  ConfigMap,
  Secret,
  Service,
  Deployment,
  PodDisruptionBudget,
  HorizontalPodAutoscaler,
  ServiceMonitor,
};

/** Every manifest file parsed (one object each), kustomization.yaml aside. */
export function parseObjects(files: Record<string, string>): Record<string, K8sObject> {
  const out: Record<string, K8sObject> = {};
  for (const [rel, text] of Object.entries(files)) if (rel !== 'kustomization.yaml') out[rel] = YAML.parse(text) as K8sObject;
  return out;
}

/** Validate each object against its Kubernetes schema; returns the problems (empty when all are valid). */
export function validateObjects(objects: Record<string, K8sObject>): string[] {
  const problems: string[] = [];
  for (const [rel, o] of Object.entries(objects)) {
    const Model = MODELS[o.kind];
    if (!Model) {
      problems.push(`${rel}: no schema for kind ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (e) {
      problems.push(`${rel}: ${(e as Error).message}`);
    }
  }
  return problems;
}

export const byKind = (objects: Record<string, K8sObject>, kind: string): K8sObject[] => Object.values(objects).filter((o) => o.kind === kind);

/**
 * The Deployment's projected config volume as kubelet writes it, under a fresh directory:
 * `..<timestamp>/<item paths>` holding the files (0444, secrets with their item mode),
 * `..data` → that directory, and each top-level entry a symlink through `..data`.
 * `/etc/gatewayctl` inside the files is rewritten to that directory (the mount point), and
 * `rewrite` replaces further container paths (e.g. /dev/stdout where the test has a socket).
 * With `inPlace` nothing is rewritten: the directory is mounted at the mount path (a container).
 */
export function mountConfigVolume(objects: Record<string, K8sObject>, rewrite: Record<string, string> = {}, opts: { inPlace?: boolean } = {}): string {
  const dep = byKind(objects, 'Deployment')[0];
  const spec = dep.spec.template.spec;
  const mount = spec.containers[0].volumeMounts.find((v: K8sObject) => v.name === 'config');
  const volume = spec.volumes.find((v: K8sObject) => v.name === 'config');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gw-k8s-volume-'));
  chmodSync(dir, 0o755);
  const stamp = '..2026_12_01_09_00_00.000000001';
  const tops = new Set<string>();
  for (const src of volume.projected.sources) {
    const ref = src.configMap ?? src.secret;
    const obj = Object.values(objects).find((o) => o.kind === (src.configMap ? 'ConfigMap' : 'Secret') && o.metadata.name === ref.name)!;
    for (const item of ref.items) {
      const raw = src.secret ? Buffer.from(obj.data[item.key], 'base64').toString('utf8') : obj.data[item.key];
      if (raw === undefined) throw new Error(`${ref.name} has no key ${item.key}`);
      const file = path.join(dir, stamp, item.path);
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
      let text = opts.inPlace ? raw : raw.replaceAll(`${mount.mountPath}/`, `${dir}/`);
      for (const [from, to] of Object.entries(rewrite)) text = text.replaceAll(from, to);
      writeFileSync(file, text, { mode: item.mode ?? volume.projected.defaultMode });
      tops.add(item.path.split('/')[0]);
    }
  }
  symlinkSync(stamp, path.join(dir, '..data'));
  for (const t of tops) symlinkSync(`..data/${t}`, path.join(dir, t));
  return dir;
}

// The Kubernetes target: `gatewayctl build --target k8s` turns the same gateway.yaml into a
// kustomize directory (manifests.ts) running the config on the official nginx image
// (container.ts). This feature owns the `kubernetes:` keys and their rules; it adds nothing
// to the nginx config. The build command (a composition root) calls adaptToContainer and
// k8sFiles; the core never imports them.
import type { Feature } from '../../core/feature.ts';
import type { KubernetesSettings, SourcePos } from '../../model/types.ts';
import { deepDiff, fieldText } from '../../diff/semantic.ts';
import { DEFAULT_KUBERNETES } from './manifests.ts';
import { kubernetesSchema } from './schema.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
function normalizeKubernetes(v: any, at: (p: string) => SourcePos): KubernetesSettings | null {
  if (v === undefined || v === null) return null;
  const keyAt: Record<string, SourcePos> = {};
  for (const k of Object.keys(v)) keyAt[k] = at(`kubernetes.${k}`);
  if (v.autoscaling) keyAt['autoscaling.max_replicas'] = at('kubernetes.autoscaling.max_replicas');
  const d = DEFAULT_KUBERNETES;
  const sm = v.service_monitor;
  return {
    name: v.name ?? d.name,
    namespace: v.namespace ?? null,
    image: v.image ?? d.image,
    imagePullPolicy: v.image_pull_policy ?? d.imagePullPolicy,
    resources: v.resources ? { requests: { ...(v.resources.requests ?? {}) }, limits: { ...(v.resources.limits ?? {}) } } : structuredClone(d.resources),
    service: { type: v.service?.type ?? 'ClusterIP', annotations: { ...(v.service?.annotations ?? {}) } },
    autoscaling: v.autoscaling ? { maxReplicas: v.autoscaling.max_replicas, cpuPercent: v.autoscaling.cpu_percent ?? 70 } : null,
    drainSeconds: v.drain_seconds ?? d.drainSeconds,
    serviceMonitor: sm === false ? null : { interval: (sm && sm !== true && sm.interval) || '30s', labels: { ...((sm && sm !== true && sm.labels) || {}) } },
    at: at('kubernetes'),
    keyAt,
  };
}

export const kubernetesFeature: Feature = {
  name: 'kubernetes',
  summary: 'build --target k8s: ConfigMap, Secret, Deployment on the official nginx image, Service, PDB, HPA, ServiceMonitor',
  schema: kubernetesSchema,
  cost: { njsCalls: () => 0, measured: 'none: it adds nothing to the nginx config' },
  normalize: (raw, m, ctx) => {
    m.kubernetes = normalizeKubernetes(raw.kubernetes, ctx.at);
  },
  diff(a, b, c) {
    const plain = (k: KubernetesSettings | null) => (k ? { ...k, at: null, keyAt: null } : null);
    for (const f of deepDiff(plain(a.kubernetes), plain(b.kubernetes), 'kubernetes')) c.add('global', 'changed', f.path, fieldText(f));
  },
  rules(m, err, warn) {
    const k = m.kubernetes;
    if (!k?.autoscaling) return;
    const replicas = m.fleet?.replicas ?? 1;
    const pos = k.keyAt.autoscaling ?? k.at;
    if (!k.resources.requests.cpu) {
      err('GW544', pos, 'kubernetes.autoscaling', 'the autoscaler scales on CPU utilization of the requests: set kubernetes.resources.requests.cpu');
    }
    if (k.autoscaling.maxReplicas < replicas) {
      err('GW549', k.keyAt['autoscaling.max_replicas'] ?? pos, 'kubernetes.autoscaling.max_replicas', `max_replicas ${k.autoscaling.maxReplicas} is below fleet.replicas ${replicas} (the autoscaler's minimum)`);
    }
    if (m.fleet?.limitMode === 'divided' && k.autoscaling.maxReplicas > replicas && (m.rateZones.length || m.connZones.length)) {
      warn(
        'GW543',
        pos,
        'kubernetes.autoscaling',
        `fleet.limits: divided divides by max_replicas ${k.autoscaling.maxReplicas}, so the fleet never exceeds an allowance; while fewer pods run, a client gets as little as ${replicas}/${k.autoscaling.maxReplicas} of it`,
      );
    }
  },
};

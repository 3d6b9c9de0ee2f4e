// The Kubernetes objects of `gatewayctl build --target k8s`, as plain data, and their files:
// a kustomize directory (`kubectl apply -k <dir>`) of deterministic YAML.
//
//   kustomization.yaml   the resources below (and the namespace, when set)
//   configmap.yaml       the nginx config and the njs bundle (every non-secret build file)
//   secret.yaml          the key map, the JWT preload, TLS certificates and keys (only when any)
//                        (both immutable, named <name>-config-<hash>, <name>-secrets-<hash>)
//   deployment.yaml      the official nginx image running the config (see container.ts)
//   service.yaml         the listeners; sessionAffinity ClientIP with fleet.limits: affinity
//   replicas-service.yaml   a headless Service of every pod's status listener (drift checks)
//   pdb.yaml             at most one pod down at a time for voluntary disruptions
//   hpa.yaml             with kubernetes.autoscaling
//   metrics-service.yaml, servicemonitor.yaml   with metrics (a headless Service for the scrape)
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import type { GatewayModel, KubernetesSettings } from '../../model/types.ts';
import { durationSeconds } from '../../model/shutdown.ts';
import { CONF_FILE, CONFIG_DIR, PREFIX } from './container.ts';

export const CONFIG_HASH_ANNOTATION = 'gatewayctl.io/config-sha256';
export const INPUT_HASH_ANNOTATION = 'gatewayctl.io/input-sha256';
/** ConfigMap and Secret objects are limited to 1 MiB by the API server (etcd's value limit). */
export const OBJECT_LIMIT = 1024 * 1024;

export const DEFAULT_KUBERNETES: Omit<KubernetesSettings, 'at' | 'keyAt'> = {
  name: 'gateway',
  namespace: null,
  image: 'nginx:1.27',
  imagePullPolicy: 'IfNotPresent',
  resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '256Mi' } },
  service: { type: 'ClusterIP', annotations: {} },
  autoscaling: null,
  drainSeconds: 5,
  serviceMonitor: { interval: '30s', labels: {} },
};

export interface K8sInput {
  model: GatewayModel; // adapted to the container (container.ts)
  /** build files (relative path → text): config, njs bundle, preload objects, key map, manifest.json */
  files: Record<string, string>;
  /** which of them hold secrets (0600 in a build directory): they go to the Secret */
  isSecret(rel: string): boolean;
  /** TLS certificate and key files, path under /etc/gatewayctl → content */
  tls: Record<string, string>;
  /** where the pod answers readiness and liveness (manifest.json `readiness`) */
  readiness: { path: string; listen: string; host?: string; health: string };
  /** oldest nginx / njs the config runs on (manifest.json `requires`) */
  requires: { nginx: string; njs: string | null };
}

/** A ConfigMap/Secret key for a build path: "/" is not allowed in keys. */
export const dataKey = (rel: string): string => rel.replaceAll('/', '_');

const settings = (m: GatewayModel): Omit<KubernetesSettings, 'at' | 'keyAt'> => m.kubernetes ?? DEFAULT_KUBERNETES;

/** An IANA service name (port names): lowercase alphanumerics and single hyphens, at most 15, a letter somewhere. */
function portName(base: string, taken: Set<string>, fallback: string): string {
  let n = base.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/-+/g, '-').slice(0, 15).replace(/^-|-$/g, '');
  if (!/[a-z]/.test(n) || taken.has(n)) n = fallback;
  taken.add(n);
  return n;
}

interface PodPort {
  name: string;
  port: number;
  /** served to clients through the Service */
  public: boolean;
}

function podPorts(m: GatewayModel): PodPort[] {
  const taken = new Set<string>(['status', 'metrics']);
  const out: PodPort[] = [];
  const seen = new Set<number>();
  m.listeners.forEach((l, i) => {
    if (!(l.tls?.pending) && !seen.has(l.port)) {
      seen.add(l.port);
      out.push({ name: portName(l.name, taken, `listener-${i}`), port: l.port, public: true });
    }
    const r = l.tls?.redirectFrom;
    if (r && !seen.has(r)) {
      seen.add(r);
      out.push({ name: portName(`${l.name.slice(0, 11)}-http`, taken, `redirect-${i}`), port: r, public: true });
    }
  });
  if (m.global.status) {
    const port = Number(m.global.status.listen.split(':').pop());
    if (!seen.has(port)) out.push({ name: 'status', port, public: false });
  }
  return out;
}

/** Directories under the prefix nginx writes to (pid, temp, logs, caches): emptyDir volumes. */
function writableDirs(m: GatewayModel): string[] {
  const g = m.global;
  const rels = [g.paths.pid, `${g.paths.temp}/x`, `${g.paths.logs}/x`, ...m.caches.map((c) => `${c.path}/x`)];
  if (m.auth?.failureLog) rels.push(m.auth.failureLog);
  const dirs = new Set<string>();
  for (const r of rels) {
    if (r.startsWith('/')) {
      const dir = r.split('/').slice(0, -1).join('/');
      if (dir && !dir.startsWith('/dev')) dirs.add(dir);
      continue;
    }
    const top = r.split('/')[0];
    if (r.includes('/') && top !== '..') dirs.add(`${PREFIX}${top}`);
  }
  return [...dirs].sort();
}

const volumeName = (dir: string, i: number): string => {
  const n = dir.replace(/^\/etc\/nginx\//, '').toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '').slice(0, 50);
  return n && n !== 'config' ? `w-${n}` : `w-dir-${i}`;
};

const sortedEntries = (o: Record<string, string>) => Object.keys(o).sort().map((k) => [k, o[k]] as const);

/** sha256 over every file the pods read (config and secrets): the pod template annotation that rolls the pods on a change. */
export function configHash(config: Record<string, string>, secret: Record<string, string>): string {
  const h = createHash('sha256');
  for (const [k, v] of sortedEntries(config)) h.update(`config\0${k}\0${v}\0`);
  for (const [k, v] of sortedEntries(secret)) h.update(`secret\0${k}\0${v}\0`);
  return h.digest('hex');
}

/** The objects, by file name, in kustomization order. */
export function k8sObjects(input: K8sInput): { file: string; object: Record<string, unknown> }[] {
  const m = input.model;
  const k = settings(m);
  const name = k.name;
  const labels = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/managed-by': 'gatewayctl' };
  const selector = { 'app.kubernetes.io/name': name };
  const configFiles: Record<string, string> = {};
  const secretFiles: Record<string, string> = {};
  for (const [rel, text] of sortedEntries(input.files)) (input.isSecret(rel) ? secretFiles : configFiles)[rel] = text;
  for (const [rel, text] of sortedEntries(input.tls)) secretFiles[rel] = text;
  for (const rel of [...Object.keys(configFiles), ...Object.keys(secretFiles)]) {
    const others = [...Object.keys(configFiles), ...Object.keys(secretFiles)].filter((x) => x !== rel && dataKey(x) === dataKey(rel));
    if (others.length) throw new Error(`two build files map to one ConfigMap/Secret key: ${rel}, ${others[0]}`);
  }
  const hasSecret = Object.keys(secretFiles).length > 0;
  const objects: { file: string; object: Record<string, unknown> }[] = [];

  // content-addressed and immutable, as kustomize's generators make them: a rollout mounts
  // new objects while the old ReplicaSet keeps its own, so pods of the previous version that
  // restart still get the previous config, and `kubectl rollout undo` brings it back
  const configMapName = `${name}-config-${configHash(configFiles, {}).slice(0, 10)}`;
  const secretName = `${name}-secrets-${configHash({}, secretFiles).slice(0, 10)}`;
  objects.push({
    file: 'configmap.yaml',
    object: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: configMapName, labels },
      immutable: true,
      data: Object.fromEntries(Object.entries(configFiles).map(([rel, text]) => [dataKey(rel), text])),
    },
  });
  if (hasSecret) {
    objects.push({
      file: 'secret.yaml',
      object: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: secretName, labels },
        type: 'Opaque',
        immutable: true,
        data: Object.fromEntries(Object.entries(secretFiles).map(([rel, text]) => [dataKey(rel), Buffer.from(text).toString('base64')])),
      },
    });
  }

  const ports = podPorts(m);
  const probePort = Number(input.readiness.listen.split(':').pop());
  const probeTls = m.listeners.some((l) => l.port === probePort && l.tls && !l.tls.pending);
  const probe = (p: string) => ({
    path: p,
    port: ports.find((x) => x.port === probePort)?.name ?? probePort,
    ...(probeTls ? { scheme: 'HTTPS' } : {}),
    ...(input.readiness.host ? { httpHeaders: [{ name: 'Host', value: input.readiness.host }] } : {}),
  });
  const shutdown = durationSeconds(m.global.workerShutdownTimeout);
  const grace = k.drainSeconds + Math.ceil(shutdown) + 5;
  const nginx = ['nginx', '-p', PREFIX, '-c', CONF_FILE];
  const dirs = writableDirs(m);
  const resources: Record<string, Record<string, string>> = {};
  if (Object.keys(k.resources.requests).length) resources.requests = { ...k.resources.requests };
  if (Object.keys(k.resources.limits).length) resources.limits = { ...k.resources.limits };
  const annotations: Record<string, string> = {
    [CONFIG_HASH_ANNOTATION]: configHash(configFiles, secretFiles),
    [INPUT_HASH_ANNOTATION]: m.source.hash,
  };
  const requires = `nginx >= ${input.requires.nginx}${input.requires.njs ? `, njs >= ${input.requires.njs}` : ''}`;
  objects.push({
    file: 'deployment.yaml',
    object: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, labels, annotations: { 'gatewayctl.io/requires': requires } },
      spec: {
        ...(k.autoscaling ? {} : { replicas: m.fleet?.replicas ?? 1 }),
        revisionHistoryLimit: 5,
        selector: { matchLabels: selector },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: {
          metadata: { labels, annotations },
          spec: {
            terminationGracePeriodSeconds: grace,
            containers: [
              {
                name: 'nginx',
                image: k.image,
                imagePullPolicy: k.imagePullPolicy,
                command: [...nginx, '-g', 'daemon off;'],
                ports: ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: 'TCP' })),
                readinessProbe: { httpGet: probe(input.readiness.path), periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
                livenessProbe: { httpGet: probe(input.readiness.health), initialDelaySeconds: 5, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
                // keep serving while the endpoint is withdrawn from Services and balancers; then
                // the runtime sends the image's STOPSIGNAL (SIGQUIT in the official image):
                // nginx stops accepting, finishes open requests within worker_shutdown_timeout
                // and exits, well inside terminationGracePeriodSeconds. (Quitting from the hook
                // instead would have the runtime kill the hook when nginx exits: a failed hook.)
                lifecycle: { preStop: { exec: { command: ['sleep', String(k.drainSeconds)] } } },
                ...(Object.keys(resources).length ? { resources } : {}),
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'], add: ['CHOWN', 'NET_BIND_SERVICE', 'SETGID', 'SETUID'] },
                },
                volumeMounts: [
                  { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                  ...dirs.map((d, i) => ({ name: volumeName(d, i), mountPath: d })),
                ],
              },
            ],
            volumes: [
              {
                name: 'config',
                projected: {
                  defaultMode: 0o444,
                  sources: [
                    { configMap: { name: configMapName, items: Object.keys(configFiles).map((rel) => ({ key: dataKey(rel), path: rel })) } },
                    ...(hasSecret ? [{ secret: { name: secretName, items: Object.keys(secretFiles).map((rel) => ({ key: dataKey(rel), path: rel, mode: 0o400 })) } }] : []),
                  ],
                },
              },
              ...dirs.map((d, i) => ({ name: volumeName(d, i), emptyDir: {} })),
            ],
          },
        },
      },
    },
  });

  const affinity = m.fleet?.limitMode === 'affinity';
  objects.push({
    file: 'service.yaml',
    object: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, labels, ...(Object.keys(k.service.annotations).length ? { annotations: k.service.annotations } : {}) },
      spec: {
        type: k.service.type,
        selector,
        ports: ports.filter((p) => p.public).map((p) => ({ name: p.name, port: p.port, targetPort: p.name, protocol: 'TCP' })),
        ...(affinity ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } } } : {}),
        ...(affinity && k.service.type !== 'ClusterIP' ? { externalTrafficPolicy: 'Local' } : {}),
      },
    },
  });
  if (m.global.status) {
    // every replica's status listener by DNS (one A record per ready pod): `gatewayctl
    // replicas --dns <name>-replicas.<namespace>.svc:<port>` asks each which config it serves
    const port = Number(m.global.status.listen.split(':').pop());
    objects.push({
      file: 'replicas-service.yaml',
      object: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `${name}-replicas`, labels: { ...labels, 'app.kubernetes.io/component': 'replicas' } },
        spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector, ports: [{ name: 'status', port, targetPort: port, protocol: 'TCP' }] },
      },
    });
  }
  objects.push({
    file: 'pdb.yaml',
    object: { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name, labels }, spec: { maxUnavailable: 1, selector: { matchLabels: selector } } },
  });
  if (k.autoscaling) {
    objects.push({
      file: 'hpa.yaml',
      object: {
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name, labels },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
          minReplicas: m.fleet?.replicas ?? 1,
          maxReplicas: k.autoscaling.maxReplicas,
          metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: k.autoscaling.cpuPercent } } }],
        },
      },
    });
  }
  const s = m.metrics;
  if (s) {
    const listener = s.listener === null ? null : m.listeners.find((l) => l.name === s.listener);
    const port = listener ? listener.port : Number(m.global.status!.listen.split(':').pop());
    const metricsLabels = { ...labels, 'app.kubernetes.io/component': 'metrics' };
    objects.push({
      file: 'metrics-service.yaml',
      object: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `${name}-metrics`, labels: metricsLabels },
        spec: { clusterIP: 'None', selector, ports: [{ name: 'metrics', port, targetPort: port, protocol: 'TCP' }] },
      },
    });
    if (k.serviceMonitor) {
      objects.push({
        file: 'servicemonitor.yaml',
        object: {
          apiVersion: 'monitoring.coreos.com/v1',
          kind: 'ServiceMonitor',
          metadata: { name, labels: { ...labels, ...k.serviceMonitor.labels } },
          spec: {
            selector: { matchLabels: { 'app.kubernetes.io/name': name, 'app.kubernetes.io/component': 'metrics' } },
            endpoints: [{ port: 'metrics', path: s.path, interval: k.serviceMonitor.interval, ...(listener?.tls ? { scheme: 'https' } : {}) }],
          },
        },
      });
    }
  }
  return objects;
}

/** One object as YAML: block style, literal blocks for multi-line text, no line folding. */
export const printYaml = (o: unknown): string => YAML.stringify(o, { lineWidth: 0, blockQuote: 'literal', indentSeq: true, aliasDuplicateObjects: false });

/** The kustomize directory: relative path → text. */
export function k8sFiles(input: K8sInput): Record<string, string> {
  const m = input.model;
  const k = settings(m);
  const head = `# Generated by gatewayctl ${m.version} from ${m.source.file} (sha256 ${m.source.hash}).\n# Do not edit: change the YAML and run \`gatewayctl build --target k8s\`.\n`;
  const objects = k8sObjects(input);
  const out: Record<string, string> = {};
  for (const o of objects) out[o.file] = head + printYaml(o.object);
  out['kustomization.yaml'] =
    head +
    printYaml({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      ...(k.namespace ? { namespace: k.namespace } : {}),
      resources: objects.map((o) => o.file),
    });
  return out;
}

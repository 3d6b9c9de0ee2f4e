// The gateway as it runs in a pod of the official nginx image. The build is the same; only
// the paths and addresses that depend on where nginx runs change:
//
//   /etc/gatewayctl/     the config: one projected volume of the ConfigMap (nginx.conf,
//                        mime.types, conf.d/, njs/, manifest.json) and the Secret (key map,
//                        JWT preload, tls/<listener>.crt|.key). Mounted read-only, each file a
//                        symlink into `..data/` (kubelet's atomic writer). nginx is started with
//                        -c /etc/gatewayctl/nginx.conf, so its conf prefix is this directory:
//                        `include conf.d/…`, `js_path "njs/"`, `js_preload_object … from
//                        njs/…` and mime.types resolve here, through the symlinks.
//   /etc/nginx/          the prefix (-p): `load_module modules/…` finds the image's njs module;
//                        the writable directories (run/, temp/, logs/, cache/) are emptyDirs.
//   logs                 the main access log goes to /dev/stdout, the error log to nginx's stderr.
//   listeners            every listener, and the status listener, bind all of the pod's
//                        addresses (kubelet probes and the Service reach the pod IP).
import type { Diagnostic, GatewayModel, SourcePos } from '../../model/types.ts';

export const CONFIG_DIR = '/etc/gatewayctl';
export const PREFIX = '/etc/nginx/';
export const CONF_FILE = `${CONFIG_DIR}/nginx.conf`;
export const TLS_DIR = 'tls';

/** A listener's certificate pair: where the build found it, and where the pod reads it (in the Secret). */
export interface TlsFile {
  listener: string;
  source: string; // path on the build machine
  rel: string; // path under CONFIG_DIR
  at: SourcePos;
}

/** The TLS files of a model's listeners, with their paths in the pod. */
export function tlsFiles(m: GatewayModel): TlsFile[] {
  const out: TlsFile[] = [];
  for (const l of m.listeners) {
    if (!l.tls) continue;
    out.push({ listener: l.name, source: l.tls.cert, rel: `${TLS_DIR}/${l.name}.crt`, at: l.tls.at });
    out.push({ listener: l.name, source: l.tls.key, rel: `${TLS_DIR}/${l.name}.key`, at: l.tls.at });
  }
  return out;
}

const isLoopback = (host: string) => host === '127.0.0.1' || host === '[::1]' || host === 'localhost';

/**
 * Adapt a finished model to the pod (called by compile before the rules: CompileOptions.adapt).
 * Warnings for what cannot work the same way in a pod.
 */
export function adaptToContainer(m: GatewayModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  const g = m.global;
  for (const l of m.listeners) {
    l.address = null;
    if (l.tls) {
      if (l.tls.pending) {
        out.push({
          code: 'GW545',
          severity: 'error',
          at: l.tls.at,
          message: `listener ${l.name}: the ACME certificate is not issued yet; the Secret needs the certificate files (run gatewayctl tls issue where the challenge is answered, then build again)`,
        });
      }
      l.tls.cert = `${CONFIG_DIR}/${TLS_DIR}/${l.name}.crt`;
      l.tls.key = `${CONFIG_DIR}/${TLS_DIR}/${l.name}.key`;
    }
  }
  if (g.status) {
    const port = g.status.listen.split(':').pop()!;
    const host = g.status.listen.slice(0, -(port.length + 1));
    if (!host || isLoopback(host)) g.status.listen = port;
  }
  if (g.accessLog) g.accessLog.path = '/dev/stdout';
  g.errorLog.path = 'stderr'; // nginx writes to its fd 2 (whatever the runtime made it)
  const s = m.metrics;
  if (s && m.kubernetes?.serviceMonitor !== null && s.allow.every((c) => c === '127.0.0.1' || c === '::1' || c.startsWith('127.'))) {
    out.push({
      code: 'GW547',
      severity: 'warning',
      at: s.keyAt.allow ?? s.at,
      message: 'metrics.allow admits only loopback: Prometheus scrapes from another pod and gets 403; add the pod network (e.g. 10.0.0.0/8) to metrics.allow',
    });
  }
  if (m.acme) {
    out.push({
      code: 'GW548',
      severity: 'warning',
      at: m.acme.at,
      message: 'ACME challenges are answered from a webroot on the machine that runs gatewayctl tls, not in the pods: issue and renew there (or with cert-manager), then build and apply again so the Secret carries the certificate',
    });
  }
  return out;
}

// The keys of the Kubernetes target (`gatewayctl build --target k8s`): the Deployment's
// image and resources, the Service, the autoscaler, the drain and the ServiceMonitor. The
// replica count is the fleet's (`fleet.replicas`).
import type { SchemaFragment } from '../../core/feature.ts';
import { parts } from '../../config/schema.ts';

const { durationSec } = parts;

// Kubernetes' own syntaxes: a DNS-1123 label, a quantity, an image reference, a label value
const dnsLabel = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$', description: 'a DNS-1123 label, at most 40 characters (object names are derived from it)' };
const cpu = { type: 'string', pattern: '^([0-9]{1,6}m|[0-9]{1,4}(\\.[0-9]{1,3})?)$' };
const memory = { type: 'string', pattern: '^[0-9]{1,9}(Ki|Mi|Gi|Ti|k|M|G|T)?$' };
const labelValue = { type: 'string', pattern: '^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$' };
const labelKey = '^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const text = { type: 'string', pattern: '^[^\\x00-\\x1f\\x7f]*$', maxLength: 1024 };
const resourceSet = { type: 'object', additionalProperties: false, properties: { cpu, memory } };

export const kubernetesSchema: SchemaFragment = {
  root: {
    after: 'fleet',
    properties: {
      kubernetes: {
        type: 'object',
        additionalProperties: false,
        description: 'Settings of `gatewayctl build --target k8s` (ignored by the nginx build). Replicas: fleet.replicas.',
        properties: {
          name: { ...dnsLabel, description: 'Name of the objects and the app.kubernetes.io/name label (default gateway).' },
          namespace: { ...dnsLabel, description: 'Namespace set in kustomization.yaml (default: none, kubectl decides).' },
          image: {
            type: 'string',
            pattern: '^[a-z0-9]([a-z0-9._/:-]{0,200}[a-z0-9])?(@sha256:[0-9a-f]{64})?$',
            description: 'An official nginx image with the njs module (default nginx:1.27).',
          },
          image_pull_policy: { enum: ['Always', 'IfNotPresent', 'Never'] },
          resources: {
            type: 'object',
            additionalProperties: false,
            properties: { requests: resourceSet, limits: resourceSet },
            description: 'Container resources (default requests cpu 100m, memory 64Mi; limits memory 256Mi).',
          },
          service: {
            type: 'object',
            additionalProperties: false,
            properties: {
              type: { enum: ['ClusterIP', 'NodePort', 'LoadBalancer'] },
              annotations: { type: 'object', maxProperties: 50, propertyNames: { pattern: labelKey, maxLength: 253 }, additionalProperties: text },
            },
          },
          autoscaling: {
            type: 'object',
            additionalProperties: false,
            required: ['max_replicas'],
            properties: {
              max_replicas: { type: 'integer', minimum: 1, maximum: 1000 },
              cpu_percent: { type: 'integer', minimum: 1, maximum: 1000, description: 'Target average CPU utilization of the requests (default 70).' },
            },
            description: 'A HorizontalPodAutoscaler between fleet.replicas and max_replicas.',
          },
          drain_seconds: { type: 'integer', minimum: 0, maximum: 300, description: 'preStop wait before nginx quits gracefully, while the endpoint is removed (default 5).' },
          service_monitor: {
            oneOf: [
              { type: 'boolean' },
              {
                type: 'object',
                additionalProperties: false,
                properties: {
                  interval: durationSec,
                  labels: { type: 'object', maxProperties: 20, propertyNames: { pattern: labelKey, maxLength: 253 }, additionalProperties: labelValue },
                },
              },
            ],
            description: 'A Prometheus Operator ServiceMonitor when metrics are on (default true; labels select the Prometheus).',
          },
        },
      },
    },
  },
};

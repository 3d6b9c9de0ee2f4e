// The keys of the fleet: how many gateway instances serve this gateway.yaml, and what a
// limit zone's allowance means across them.
import type { SchemaFragment } from '../../core/feature.ts';

export const fleetSchema: SchemaFragment = {
  root: {
    after: 'limits',
    properties: {
      fleet: {
        type: 'object',
        additionalProperties: false,
        description:
          'The gateway instances that serve this config (replicas behind a load balancer). nginx keeps rate and connection counters per instance; `limits` says what an allowance means across the fleet.',
        properties: {
          replicas: { type: 'integer', minimum: 1, maximum: 1000, description: 'Instances serving this config (default 1); the Kubernetes Deployment runs this many.' },
          limits: {
            enum: ['per_instance', 'divided', 'affinity'],
            description:
              'per_instance (default): every instance enforces the whole allowance, so a client may get up to replicas × it. divided: every instance enforces allowance ÷ replicas, rounded down (never more than the allowance in total). affinity: a front tier sends each client to one instance (Kubernetes: Service sessionAffinity ClientIP), which enforces the whole allowance.',
          },
        },
      },
    },
  },
};

// The keys of IP access rules: `global.access` and a route's `access:`.
import type { SchemaFragment } from '../../core/feature.ts';
import { parts } from '../../config/schema.ts';

const access = {
  type: 'object',
  additionalProperties: false,
  properties: { allow: parts.cidrList, deny: parts.cidrList },
};

export const accessSchema: SchemaFragment = {
  global: { after: 'acme_webroot', properties: { access } },
  route: { after: 'cors', properties: { access } },
};

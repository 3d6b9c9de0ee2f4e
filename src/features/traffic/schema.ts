// The keys of traffic routing: `traffic:` on a route (a match table on a header, cookie, query
// argument or JWT claim, a weighted split, and what keeps a client on one side of it).
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS, parts } from '../../config/schema.ts';

const { headerName, name } = parts;
const token = { type: 'string', pattern: PATTERNS.token };

const source = (key: string, value: object) => ({
  type: 'object',
  additionalProperties: false,
  required: [key, 'value', 'upstream'],
  properties: { [key]: value, value: { ...token, description: 'the exact value (nginx compares it case-insensitively)' }, upstream: name },
});

const sticky = {
  description: 'what keeps a client on one side of the split: client_ip, client_id (authenticated client), { header } or { cookie }; absent: each request is split anew',
  oneOf: [
    { enum: ['client_ip', 'client_id'] },
    { type: 'object', additionalProperties: false, required: ['header'], properties: { header: headerName } },
    { type: 'object', additionalProperties: false, required: ['cookie'], properties: { cookie: token } },
  ],
};

const traffic = {
  type: 'object',
  additionalProperties: false,
  description: 'choose the upstream per request: the first matching rule, else the split, else the route\'s upstream',
  properties: {
    match: {
      type: 'array',
      maxItems: 50,
      description: 'rules in order; the first whose request value equals `value` sends the request to its upstream',
      items: { oneOf: [source('header', headerName), source('cookie', token), source('query', token), source('jwt_claim', token)] },
    },
    split: {
      type: 'object',
      maxProperties: 20,
      propertyNames: { pattern: PATTERNS.name },
      additionalProperties: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
      description: 'upstream → percent of the requests no rule matched (canary, blue/green); the rest goes to the route\'s upstream',
    },
    sticky,
  },
};

export const trafficSchema: SchemaFragment = {
  route: { after: 'upstream', properties: { traffic } },
};

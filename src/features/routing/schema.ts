// The keys of routing: consistent-hash keys derived by njs (`hash_key` forms on an
// upstream), the model catalogue (`models:` at the top level) and a route's `models:`.
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS } from '../../config/schema.ts';
import { stickySchema } from './sticky.ts';

// Model ids as OpenAI-compatible clients send them: gpt-4o, meta-llama/Llama-3-70b, ft:gpt-4o:acme:x.
export const MODEL_ID = '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$';
// A fallback deadline: milliseconds, seconds or minutes (compared with $request_time).
export const DEADLINE = '^(?:[1-9][0-9]{0,6}ms|[1-9][0-9]{0,4}s|[1-9][0-9]{0,2}m)$';
// JSON member / claim names used as hash keys.
export const FIELD_NAME = '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$';

const njsHashKeys = [
  { const: 'client_id', description: 'the authenticated client (needs auth on the routes)' },
  {
    type: 'object',
    additionalProperties: false,
    required: ['jwt_claim'],
    properties: { jwt_claim: { type: 'string', pattern: FIELD_NAME, description: 'a claim of the verified JWT' } },
  },
  {
    type: 'object',
    additionalProperties: false,
    required: ['body_field'],
    properties: { body_field: { type: 'string', pattern: FIELD_NAME, description: 'a top-level field of the JSON request body (e.g. user)' } },
  },
  {
    type: 'object',
    additionalProperties: false,
    required: ['prompt_prefix'],
    properties: {
      prompt_prefix: {
        type: 'integer',
        minimum: 16,
        maximum: 65536,
        description:
          'SHA-1 of the first N bytes of the prompt (chat `messages` as role and text, or `prompt`): requests sharing a system prompt and conversation start land on the same server, so its prefix cache (vLLM, SGLang) hits. docs/routing.md',
      },
    },
  },
];

const modelsSchema = {
  type: 'array',
  description: 'Model catalogue: model-aware routes send a request to the upstream of the `model` in its JSON body; `models: list` routes answer /v1/models from it.',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['id'],
    // upstream: (a pool) or pools: (several); both: GW460
    anyOf: [{ required: ['upstream'] }, { required: ['pools'] }],
    properties: {
      id: { type: 'string', pattern: MODEL_ID },
      upstream: { type: 'string', pattern: PATTERNS.name, description: 'the pool serving the model (or pools:)' },
      pools: {
        type: 'array',
        minItems: 1,
        maxItems: 16,
        description: 'several pools serving the model: ordered (names: the first serves, the next when it fails) or weighted ({ upstream, weight }: split by weight, the others when the chosen one fails). docs/routing.md',
        items: {
          oneOf: [
            { type: 'string', pattern: PATTERNS.name },
            {
              type: 'object',
              additionalProperties: false,
              required: ['upstream'],
              properties: { upstream: { type: 'string', pattern: PATTERNS.name }, weight: { type: 'integer', minimum: 1, maximum: 1000 } },
            },
          ],
        },
      },
      fallback: {
        type: 'object',
        additionalProperties: false,
        description: 'tried only before the first response byte: after the model\'s pools fail, these models or upstreams in order',
        properties: {
          to: {
            type: 'array',
            maxItems: 8,
            items: {
              oneOf: [
                { type: 'object', additionalProperties: false, required: ['model'], properties: { model: { type: 'string', pattern: MODEL_ID } } },
                { type: 'object', additionalProperties: false, required: ['upstream'], properties: { upstream: { type: 'string', pattern: PATTERNS.name } } },
              ],
            },
          },
          on: {
            type: 'array',
            minItems: 1,
            uniqueItems: true,
            items: { enum: ['error', 'timeout', 429, 500, 502, 503, 504] },
            description: 'what moves a request on: error (no connection, or the pool answered 502), timeout (504), or the pool\'s status; default [error, timeout]',
          },
          deadline: { type: 'string', pattern: DEADLINE, description: 'no further pool is tried once the request is this old (e.g. 30s, 1500ms)' },
        },
      },
      owned_by: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$' },
      created: { type: 'integer', minimum: 0, maximum: 9999999999 },
    },
  },
};

const routeModels = {
  enum: ['route', 'list'],
  description: 'route: pick the upstream by the JSON body\'s `model` (400 missing, 404 unknown); list: answer with the model list (OpenAI /v1/models shape)',
};

export const routingSchema: SchemaFragment = {
  root: { after: 'caches', properties: { models: modelsSchema } },
  route: { after: 'set_headers', properties: { models: routeModels } },
  upstream: stickySchema,
  hashKeys: njsHashKeys,
};

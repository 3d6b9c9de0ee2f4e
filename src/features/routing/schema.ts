// The keys of routing: consistent-hash keys derived by njs (`hash_key` forms on an
// upstream), the model catalogue (`models:` at the top level) and a route's `models:`.
import type { SchemaFragment } from '../../core/feature.ts';
import { PATTERNS } from '../../config/schema.ts';
import { stickySchema } from './sticky.ts';

// Model ids as OpenAI-compatible clients send them: gpt-4o, meta-llama/Llama-3-70b, ft:gpt-4o:acme:x.
export const MODEL_ID = '^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$';
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
    required: ['id', 'upstream'],
    properties: {
      id: { type: 'string', pattern: MODEL_ID },
      upstream: { type: 'string', pattern: PATTERNS.name },
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

// The schema of gateway.yaml is the core's keys plus each feature's fragment
// (src/features/<name>/schema.ts), merged by gatewaySchema(features) in registry order.
import { describe, expect, it } from 'vitest';
import { gatewaySchema, SchemaFragmentError } from '../../src/config/schema.ts';
import { checkSchema } from '../../src/config/check-schema.ts';
import type { PositionIndex } from '../../src/config/load.ts';
import type { Feature, JsonSchema, SchemaFragment } from '../../src/core/feature.ts';
import { FEATURES } from '../../src/features/index.ts';

const feature = (name: string, schema: SchemaFragment): Feature => ({ name, summary: name, schema });
const props = (s: JsonSchema, pointer: string): string[] => {
  let cur: unknown = s;
  for (const seg of pointer.split('/').slice(1)) cur = (cur as Record<string, unknown>)[seg];
  return Object.keys((cur as { properties: Record<string, unknown> }).properties);
};
const ROUTE = '/properties/routes/items';
const noPositions: PositionIndex = { key: new Map(), value: new Map() };
const doc = (route: Record<string, unknown>) => ({
  version: 1,
  listeners: [{ name: 'web', port: 8080 }],
  upstreams: { app: { servers: ['127.0.0.1:9000'] } },
  routes: [{ match: { prefix: '/' }, upstream: 'app', ...route }],
});

describe('gatewaySchema(features)', () => {
  it('places each feature key where its fragment says, whichever feature registers first', () => {
    const s = gatewaySchema(FEATURES);
    expect(Object.keys(s.properties as object)).toEqual(['version', 'include', 'global', 'tls', 'listeners', 'upstreams', 'limits', 'caches', 'models', 'auth', 'fleet', 'kubernetes', 'routes', 'metrics', 'cluster_status', 'admin_api']);
    // cors (registered before cache) follows cache's key; auth (before routing) follows routing's
    expect(props(s, ROUTE).slice(-14)).toEqual(['max_body', 'rate_limits', 'conn_limits', 'cache', 'cors', 'access', 'token_limits', 'set_headers', 'models', 'auth', 'metrics', 'response_headers', 'errors', 'unsafe_nginx_route']);
    expect(props(s, '/properties/listeners/items')).toContain('tls');
    // the limit zones limits hosts get auth's tier after their key, in both zone kinds
    expect(props(s, '/properties/limits/properties/rate/additionalProperties').slice(0, 3)).toEqual(['key', 'tier', 'rate']);
    expect(props(s, '/properties/limits/properties/conn/additionalProperties')).toEqual(['key', 'tier', 'max', 'size']);
  });

  it('a key belongs to the schema only with its feature', () => {
    const withCors = doc({ cors: { origins: ['https://a.example'] } });
    expect(checkSchema(withCors, noPositions, 'g.yaml', gatewaySchema(FEATURES))).toEqual([]);
    const without = checkSchema(withCors, noPositions, 'g.yaml', gatewaySchema(FEATURES.filter((f) => f.name !== 'cors')));
    expect(without.map((d) => `${d.code} ${d.at?.path} ${d.message}`)).toEqual(['GW201 routes[0].cors unknown key "cors"']);
  });

  it('is the same for the same features, and leaves the fragments as they were', () => {
    const before = JSON.stringify(FEATURES.map((f) => f.schema ?? null));
    const a = JSON.stringify(gatewaySchema([...FEATURES]));
    const b = JSON.stringify(gatewaySchema([...FEATURES]));
    expect(b).toBe(a);
    expect(a).toBe(JSON.stringify(gatewaySchema(FEATURES)));
    // merging auth's tier into the zones limits hosts wrote into copies only
    expect(JSON.stringify(FEATURES.map((f) => f.schema ?? null))).toBe(before);
    expect(gatewaySchema(FEATURES)).toBe(gatewaySchema(FEATURES));
  });

  it('refuses a key two features claim, or a feature claims from the core', () => {
    const a = feature('alpha', { route: { properties: { quota: { type: 'integer' } } } });
    const b = feature('beta', { route: { after: 'name', properties: { quota: { type: 'string' } } } });
    expect(() => gatewaySchema([a, b])).toThrow(SchemaFragmentError);
    expect(() => gatewaySchema([a, b])).toThrow('route key "quota" (/properties/routes/items) is claimed by both feature alpha and feature beta');
    const core = feature('gamma', { listener: { properties: { port: { type: 'string' } } } });
    expect(() => gatewaySchema([core])).toThrow('listener key "port" (/properties/listeners/items) is claimed by both the core and feature gamma');
  });

  it('without the features a fragment anchors to, its keys go last; without a host, a place takes none', () => {
    const auth = FEATURES.find((f) => f.name === 'auth')!;
    const s = gatewaySchema([auth]); // no routing (models), no limits (zones)
    expect(Object.keys(s.properties as object).slice(-2)).toEqual(['routes', 'auth']);
    expect(props(s, ROUTE).slice(-2)).toEqual(['unsafe_nginx_route', 'auth']);
    expect(Object.keys(s.properties as object)).not.toContain('limits');
    expect(() => gatewaySchema([feature('alpha', { root: { after: 'b', properties: { a: {} } } }), feature('beta', { root: { after: 'a', properties: { b: {} } } })])).toThrow(
      'the root keys of feature alpha (after "b"), feature beta (after "a") follow each other in a circle',
    );
  });

  it('puts keys without an anchor last, in registry order, and hash_key forms after the core ones', () => {
    const s = gatewaySchema([
      feature('alpha', { route: { properties: { a1: {}, a2: {} } }, hashKeys: [{ const: 'alpha_key' }] }),
      feature('beta', { route: { properties: { b1: {} } }, hashKeys: [{ const: 'beta_key' }] }),
    ]);
    expect(props(s, ROUTE).slice(-4)).toEqual(['unsafe_nginx_route', 'a1', 'a2', 'b1']);
    const forms = (s as { properties: { upstreams: { additionalProperties: { properties: { hash_key: { oneOf: JsonSchema[] } } } } } }).properties.upstreams
      .additionalProperties.properties.hash_key.oneOf;
    expect(forms.slice(-2)).toEqual([{ const: 'alpha_key' }, { const: 'beta_key' }]);
    expect(forms[0]).toEqual({ const: 'client_ip' });
  });
});

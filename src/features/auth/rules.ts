// Cross-field rules for njs authentication (codes GW313, GW370-GW378, GW380). Problems found
// while reading the keys file, JWKS documents and secrets are reported by the build
// (src/build/auth.ts, GW379) at the position inside that file.
import type { Report } from '../../core/feature.ts';
import type { ClaimValueRule, GatewayModel, Route, SourcePos } from '../../model/types.ts';

const HS = (a: string) => a.startsWith('HS');

export function checkAuthRules(m: GatewayModel, err: Report, warn: Report): void {
  const auth = m.auth;
  const providers = auth?.jwt ?? [];
  const providerNames = providers.map((p) => p.name);

  // limit zones keyed by the authenticated client, or counting one tier only
  for (const [kind, zones] of [
    ['rate', m.rateZones],
    ['conn', m.connZones],
  ] as const) {
    for (const z of zones) {
      const p = `limits.${kind}.${z.name}`;
      if (z.tier !== null && z.key.kind !== 'client_id') {
        err('GW373', z.at, `${p}.tier`, 'tier needs key: client_id (a tier is a property of the authenticated client)');
      }
      if (z.key.kind !== 'client_id' && z.tier === null) continue;
      const users = m.routes.filter((r) => (kind === 'rate' ? r.rateLimits : r.connLimits).includes(z.name));
      const open = users.filter((r) => r.auth === null);
      const at = z.key.kind === 'client_id' ? `${p}.key` : `${p}.tier`;
      if (!auth) {
        err('GW313', z.at, at, 'key client_id needs authentication (auth) configured on the routes using this zone');
      } else if (open.length) {
        err(
          'GW313',
          z.at,
          at,
          `zone keyed by the authenticated client is used on public route(s) ${open.map((r) => `"${r.name}"`).join(', ')}; add auth to them or key the zone by client_ip`,
        );
      }
      if (z.tier !== null) {
        for (const r of users) {
          const pr = providers.find((x) => x.name === r.auth?.jwtProvider);
          if (pr && pr.tierClaim === null && r.auth?.methods.includes('jwt')) {
            warn('GW378', r.at, `routes[${r.index}].auth`, `JWT provider "${pr.name}" has no tier_claim: its clients never match tier "${z.tier}" of zone ${z.name}`);
          }
        }
      }
    }
  }

  if (auth) {
    const ih = auth.identityHeaders;
    const names = Object.values(ih).filter((h): h is string => h !== null).map((h) => h.toLowerCase());
    const dup = names.find((h, i) => names.indexOf(h) !== i);
    if (dup) err('GW376', auth.at, 'auth.identity_headers', `identity header ${dup} is used twice`);
    // framing headers (Host, Connection, Upgrade, …) are refused for every header setting (GW230)
    const reserved = ['authorization', 'x-forwarded-for', 'x-real-ip', 'x-forwarded-proto', 'x-forwarded-host'];
    for (const h of names.filter((x) => reserved.includes(x))) {
      err('GW376', auth.at, 'auth.identity_headers', `identity header ${h} would replace a header the gateway already sets`);
    }
    for (const pr of providers) {
      const p = `auth.jwt.${pr.name}`;
      const hs = pr.algorithms.filter(HS);
      const asym = pr.algorithms.filter((a) => !HS(a));
      if (pr.secretFile && pr.secretEnv) err('GW374', pr.at, `${p}.secret_env`, 'use either secret_file or secret_env, not both');
      if (hs.length && !pr.secretFile && !pr.secretEnv) {
        err('GW374', pr.at, `${p}.algorithms`, `an HMAC secret (secret_file or secret_env) is required for ${hs.join(', ')}`);
      }
      if (asym.length && !pr.jwksFile) err('GW374', pr.at, `${p}.algorithms`, `public keys (jwks_file) are required for ${asym.join(', ')}`);
      if (!hs.length && (pr.secretFile || pr.secretEnv)) warn('GW374', pr.at, p, 'an HMAC secret is configured but no HS* algorithm is allowed; it is not used');
      if (!asym.length && pr.jwksFile) warn('GW374', pr.at, `${p}.jwks_file`, 'jwks_file is configured but no RS*/PS*/ES* algorithm is allowed; it is not used');
      if (!(pr.leeway >= 0 && pr.leeway <= 600)) err('GW375', pr.at, `${p}.leeway`, 'leeway must be at most 10m');
      checkClaimValues(pr.claimValues, pr.at, `${p}.claim_values`, err);
    }
    if (!m.routes.some((r) => r.auth !== null)) warn('GW377', auth.at, 'auth', 'auth is configured but no route uses it (set auth: on routes)');
    for (const r of m.routes) {
      for (const h of r.setRequestHeaders.filter((x) => names.includes(x.name.toLowerCase()))) {
        err('GW376', r.at, `routes[${r.index}].set_headers.${h.name}`, `${h.name} is an identity header (auth.identity_headers): the gateway sets it`);
      }
    }
  }

  for (const r of m.routes) checkRoute(m, r, err, warn, providerNames);
}

function checkRoute(m: GatewayModel, r: Route, err: Report, warn: Report, providerNames: string[]): void {
  const a = r.auth;
  if (!a) return;
  const p = `routes[${r.index}].auth`;
  if (a.methods.includes('api_key') && !m.auth?.apiKeys) {
    err('GW370', a.at, p, 'api_key needs auth.api_keys (the keys file) configured');
  }
  if (a.methods.includes('jwt')) {
    if (!providerNames.length) {
      err('GW371', a.at, p, 'jwt needs a provider under auth.jwt');
    } else if (a.jwtProvider === null) {
      err('GW371', a.at, p, `several JWT providers are defined (${providerNames.join(', ')}): choose one with jwt_provider`);
    } else if (!providerNames.includes(a.jwtProvider)) {
      err('GW371', a.at, `${p}.jwt_provider`, `unknown JWT provider "${a.jwtProvider}" (defined: ${providerNames.join(', ')})`);
    } else if (a.roles.length) {
      const pr = m.auth!.jwt.find((x) => x.name === a.jwtProvider)!;
      if (pr.roleClaim === null) err('GW372', a.at, `${p}.roles`, `JWT provider "${pr.name}" has no role_claim, so no token could carry an allowed role`);
    }
  }
  if (r.cache) {
    warn('GW380', a.at, `routes[${r.index}].cache`, 'cached responses are shared by every authenticated client (the cache key does not include the client)');
  }
  if (a.claimValues.length) {
    const cp = `${p}.claim_values`;
    if (!a.methods.includes('jwt')) {
      err('GW284', a.at, cp, 'claim_values apply to JWTs, and this route does not accept jwt: add jwt to methods or remove claim_values');
    } else if (a.methods.includes('api_key')) {
      warn('GW285', a.at, cp, 'an API key carries no claims: requests with a key are accepted without these claim values (only JWTs are checked)');
    }
    checkClaimValues(a.claimValues, a.at, cp, err);
  }
  if (r.auth && !a.methods.includes('jwt') && a.jwtProvider !== null) warn('GW371', a.at, `${p}.jwt_provider`, 'jwt_provider is ignored: jwt is not among the methods');
}

/** A `contains` value with a space could never be found: a space separates the values of a scope string. */
function checkClaimValues(rules: ClaimValueRule[], at: SourcePos, path: string, err: Report): void {
  for (const c of rules) {
    for (const v of c.contains ?? []) {
      if (v.includes(' ')) err('GW286', at, `${path}.${c.claim}.contains`, `"${v}" holds a space: space-separated claims (scope) are split at spaces, so list each value on its own`);
    }
  }
}

// Traffic routing: a route chooses its upstream per request — the first rule whose header,
// cookie, query argument or JWT claim has the rule's value, else a weighted split (canary,
// blue/green; sticky by client optionally), else the route's own upstream (the default, last).
// nginx alone decides: a chain of `map`s over the request values and one `split_clients`; the
// route proxies to `http://$gw_traffic_<route>`, whose values are upstream block names (no
// resolver). A JWT claim is read from $gw_claim_key, which the JWT handler that verified the
// token writes in its own call: no njs call of this feature's own. docs: README, Traffic routing.
import type { Feature, Report } from '../../core/feature.ts';
import type { GatewayModel, Route, RouteTraffic, SourcePos, TrafficSource } from '../../model/types.ts';
import { d, type Block, type Directive } from '../../plan/directive.ts';
import { bare, headerVar, ident, MAP_KEYWORDS, q } from '../../plan/quote.ts';
import { hundredths } from '../../routing/traffic.ts';
import { trafficSchema } from './schema.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
function normalizeTraffic(raw: any, at: (p: string) => SourcePos, p: string): RouteTraffic | null {
  if (!raw || typeof raw !== 'object') return null;
  const rules = ((raw.match as any[]) ?? []).map((x: any, j: number) => {
    const kind = (['header', 'cookie', 'query', 'jwt_claim'] as const).find((k) => typeof x[k] === 'string')!;
    return { source: { kind, name: x[kind] } as TrafficSource, value: String(x.value), upstream: x.upstream, at: at(`${p}.match[${j}]`) };
  });
  const split = Object.entries((raw.split as Record<string, number>) ?? {}).map(([upstream, percent]) => ({ upstream, percent }));
  // a block that chooses nothing (a canary ramped down by deleting its split entry: split: {})
  // leaves the route on its own upstream, as if it had no traffic block
  if (!rules.length && !split.length) return null;
  const s = raw.sticky;
  const sticky = s === 'client_ip' || s === 'client_id' ? { kind: s } : s?.header ? { kind: 'header' as const, name: s.header } : s?.cookie ? { kind: 'cookie' as const, name: s.cookie } : null;
  return { rules, split, sticky, at: at(p) };
}

const id = (r: Route) => ident(r.name);
export const trafficVar = (r: Route) => `$gw_traffic_${id(r)}`;
const NJS_KEYS = ['body_field', 'jwt_claim'];
const sameSource = (a: TrafficSource, b: TrafficSource) => a.kind === b.kind && a.name.toLowerCase() === b.name.toLowerCase();
const claimName = (t: RouteTraffic) => t.rules.find((x) => x.source.kind === 'jwt_claim')?.source.name ?? null;

function sourceVar(s: TrafficSource): string {
  switch (s.kind) {
    case 'header':
      return headerVar(s.name);
    case 'cookie':
      return `$cookie_${bare(s.name, 'token').replace(/[.-]/g, '_')}`;
    case 'query':
      return `$arg_${bare(s.name, 'token').replace(/[.-]/g, '_')}`;
    case 'jwt_claim':
      return '$gw_claim_key'; // written by the JWT handler ($gw_hash_spec "claim:<name>")
  }
}

function stickyVar(r: Route, t: RouteTraffic): string {
  const s = t.sticky;
  if (!s) return '$request_id'; // each request anew
  if (s.kind === 'client_ip') return '$remote_addr';
  return `$gw_traffic_key_${id(r)}`; // the value, or a random key when it is missing
}

function stickySource(t: RouteTraffic): string | null {
  const s = t.sticky;
  if (!s || s.kind === 'client_ip') return null;
  if (s.kind === 'client_id') return '$gw_client_id';
  return sourceVar(s);
}

const percentText = (p: number): string => {
  const h = hundredths(p);
  return `${h % 100 === 0 ? h / 100 : (h / 100).toFixed(2)}%`;
};

/** The maps and split of one route: rules grouped by source in order, each falling through to the next. */
function routeBlocks(r: Route): { blocks: Block[]; mapKeys: string[][] } {
  const t = r.traffic!;
  const groups: { source: TrafficSource; rules: RouteTraffic['rules'] }[] = [];
  for (const rule of t.rules) {
    const g = groups.at(-1);
    if (g && sameSource(g.source, rule.source)) g.rules.push(rule);
    else groups.push({ source: rule.source, rules: [rule] });
  }
  const splitVar = `$gw_traffic_split_${id(r)}`;
  const last = t.split.length ? splitVar : bare(r.upstream!, 'name');
  const varOf = (k: number) => (k === 0 ? trafficVar(r) : `$gw_traffic_${id(r)}_${k}`);
  const blocks: Block[] = groups.map((g, k) => ({
    comment: k === 0 ? `traffic of route ${r.name}: the first matching rule, else ${t.split.length ? 'the split' : `upstream ${r.upstream}`}` : undefined,
    head: `map ${sourceVar(g.source)} ${varOf(k)}`,
    origin: g.rules[0].at,
    lines: [d('default', k + 1 < groups.length ? varOf(k + 1) : last), ...g.rules.map((x) => d(q(x.value, 'token'), bare(x.upstream, 'name')))],
  }));
  if (t.split.length) {
    const src = stickySource(t);
    if (src) {
      blocks.push({
        comment: `sticky key of route ${r.name}'s split; a request without it is split anew`,
        head: `map ${src} $gw_traffic_key_${id(r)}`,
        origin: t.at,
        lines: [d('""', '$request_id'), d('default', src)],
      });
    }
    blocks.push({
      comment: `split of route ${r.name}: ${t.split.map((s) => `${s.upstream} ${s.percent}%`).join(', ')}, the rest to ${r.upstream}`,
      head: `split_clients ${q(stickyVar(r, t), 'expr')} ${groups.length ? splitVar : trafficVar(r)}`,
      origin: t.at,
      lines: [...t.split.map((s) => d(percentText(s.percent), bare(s.upstream, 'name'))), d('*', bare(r.upstream!, 'name'))],
    });
  }
  return { blocks, mapKeys: groups.map((g) => g.rules.map((x) => x.value)) };
}

function checkTraffic(m: GatewayModel, err: Report): void {
  const names = m.upstreams.map((u) => u.name);
  for (const r of m.routes) {
    const t = r.traffic;
    if (!t) continue;
    const p = `routes[${r.index}].traffic`;
    if (r.models !== null || r.respond !== null || r.upstream === null) {
      err('GW412', t.at, p, 'traffic chooses among upstreams: the route needs upstream: (the default) and cannot be a models: or respond route');
      continue;
    }
    if (r.rewrite.stripPrefix || r.rewrite.replacePath) err('GW412', t.at, p, 'traffic cannot be combined with strip_prefix/rewrite (the request goes to the chosen upstream as it came)');
    const targets: [string, string][] = [
      ...t.rules.map((x, j): [string, string] => [x.upstream, `${p}.match[${j}].upstream`]),
      ...t.split.map((s): [string, string] => [s.upstream, `${p}.split.${s.upstream}`]),
      [r.upstream, `routes[${r.index}].upstream`],
    ];
    for (const [u, at] of targets) {
      const up = m.upstreams.find((x) => x.name === u);
      if (!up) {
        if (!at.endsWith('].upstream') || at.includes('traffic')) err('GW411', t.at, at, `unknown upstream "${u}" (defined: ${names.join(', ') || 'none'})`);
      } else if (up.balance === 'consistent_hash' && NJS_KEYS.includes(up.hashKey?.kind ?? '')) {
        err('GW412', t.at, at, `upstream ${u} hashes on a key njs derives (${up.hashKey!.kind}); a traffic route picks among upstreams nginx balances alone`);
      }
    }
    const claims = [...new Set(t.rules.filter((x) => x.source.kind === 'jwt_claim').map((x) => x.source.name))];
    if (claims.length > 1) err('GW413', t.at, `${p}.match`, `rules read one JWT claim per route (here: ${claims.join(', ')})`);
    if (claims.length && !r.auth?.methods.includes('jwt')) err('GW413', t.at, `${p}.match`, `a jwt_claim rule needs JWT authentication on the route (auth: jwt); without it no request has claim ${claims[0]}`);
    if (t.sticky?.kind === 'client_id' && !r.auth) err('GW413', t.at, `${p}.sticky`, 'sticky: client_id needs authentication on the route');
    // nginx reads a cookie or query argument through a variable named after it ($cookie_<name>,
    // $arg_<name>), and variable names hold no `-` or `.`: such a name could never match
    const unreadable = (src: { kind: string; name: string } | null) => (src?.kind === 'cookie' || src?.kind === 'query') && /[-.]/.test(src.name);
    t.rules.forEach((x, j) => {
      if (unreadable(x.source)) err('GW414', x.at, `${p}.match[${j}].${x.source.kind}`, `${x.source.kind} name "${x.source.name}" has - or .; nginx cannot read it by name (use letters, digits and _)`);
    });
    if (t.sticky && t.sticky.kind === 'cookie' && unreadable(t.sticky)) err('GW414', t.at, `${p}.sticky.cookie`, `cookie name "${t.sticky.name}" has - or .; nginx cannot read it by name (use letters, digits and _)`);
    t.rules.forEach((x, j) => {
      if (MAP_KEYWORDS.includes(x.value.toLowerCase())) err('GW414', x.at, `${p}.match[${j}].value`, `"${x.value}" is an nginx map keyword and cannot be matched`);
      const dup = t.rules.findIndex((y) => sameSource(y.source, x.source) && y.value.toLowerCase() === x.value.toLowerCase());
      if (dup < j) err('GW414', x.at, `${p}.match[${j}].value`, `same value as match[${dup}] (values are compared case-insensitively): this rule never matches`);
    });
    const total = t.split.reduce((a, s) => a + hundredths(s.percent), 0);
    for (const s of t.split) {
      if (Math.abs(hundredths(s.percent) - s.percent * 100) > 1e-6 || hundredths(s.percent) === 0) err('GW414', t.at, `${p}.split.${s.upstream}`, `${s.percent}: percents have at most two decimals and are at least 0.01`);
    }
    if (total > 10000) err('GW414', t.at, `${p}.split`, `the split adds up to ${total / 100}% (at most 100%; the rest goes to upstream ${r.upstream})`);
  }
}

export const trafficFeature: Feature = {
  name: 'traffic',
  summary: 'choose a route\'s upstream by header, cookie, query argument or JWT claim; weighted splits (canary, blue/green)',
  schema: trafficSchema,
  cost: {
    njsCalls: () => 0,
    measured: 'scripts/bench.ts gw_traffic (two rules falling through to a sticky split): CPU per request as gw_plain (9.1 vs 9.3 µs, short run); a JWT claim comes from the JWT handler\'s own call',
  },
  normalize(raw, m, ctx) {
    const routes = (raw.routes as { traffic?: unknown }[] | undefined) ?? [];
    for (const r of m.routes) r.traffic = normalizeTraffic(routes[r.index]?.traffic, ctx.at, `routes[${r.index}].traffic`);
  },
  rules: (m, err) => checkTraffic(m, err),
  http(m) {
    const blocks: Block[] = [];
    const mapKeys: string[][] = [];
    for (const r of m.routes.filter((x) => x.traffic && x.upstream !== null && x.models === null && x.respond === null)) {
      const b = routeBlocks(r);
      blocks.push(...b.blocks);
      mapKeys.push(...b.mapKeys);
    }
    const claims = m.routes.some((r) => r.traffic && claimName(r.traffic));
    // the JWT handler writes the claim to this js_var (declared here unless routing already does)
    const routingDeclares = m.upstreams.some((u) => u.balance === 'consistent_hash' && u.hashKey?.kind === 'jwt_claim');
    const mapLines: Directive[] = claims && !routingDeclares ? [d('js_var', '$gw_claim_key')] : [];
    return { maps: blocks, mapKeys, mapLines };
  },
  route(ctx) {
    const r = ctx.route;
    if (!r.traffic || ctx.content || r.upstream === null || r.models !== null) return;
    ctx.proxyHost = `http://${trafficVar(r)}`;
    const claim = claimName(r.traffic);
    if (claim) ctx.slots.routingKey.push(d('set', '$gw_hash_spec', q(`claim:${claim}`, 'expr')));
  },
};

/** Routes whose traffic rules read a JWT claim (auth's JWT handlers then write $gw_claim_key). */
export const trafficReadsClaims = (m: GatewayModel): boolean => m.routes.some((r) => !!r.traffic && claimName(r.traffic) !== null);

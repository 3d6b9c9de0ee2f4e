// The vocabulary of a semantic diff: sections (output order and headings), risk codes and
// one change. A leaf module, so the Feature contract (Feature.diff) can name it.

export type Section = 'routes' | 'upstreams' | 'listeners' | 'tls' | 'limits' | 'auth' | 'access' | 'caches' | 'global' | 'unsafe';

/** Output order and headings. */
export const SECTIONS: { id: Section; title: string }[] = [
  { id: 'routes', title: 'Routes' },
  { id: 'upstreams', title: 'Upstreams' },
  { id: 'listeners', title: 'Listeners (servers)' },
  { id: 'tls', title: 'TLS' },
  { id: 'limits', title: 'Limits' },
  { id: 'auth', title: 'Auth' },
  { id: 'access', title: 'Access rules' },
  { id: 'caches', title: 'Caches' },
  { id: 'global', title: 'Global settings' },
  { id: 'unsafe', title: 'Raw nginx snippets' },
];

export type RiskCode =
  | 'auth-removed'
  | 'auth-weakened'
  | 'access-removed'
  | 'rate-limit-loosened'
  | 'conn-limit-loosened'
  | 'upstream-no-servers'
  | 'tls-disabled'
  | 'tls-downgraded'
  | 'hsts-removed'
  | 'cors-wildcard'
  | 'unsafe-snippet'
  | 'public-unlimited-route'
  | 'hash-keys-moved';

export interface Change {
  section: Section;
  kind: 'added' | 'removed' | 'changed';
  /** what changed, e.g. "route chat", "rate limit api", "listener public" */
  subject: string;
  /** the whole sentence, e.g. "route chat: upstream llm → llm-v2" */
  text: string;
  /** set when the change weakens the gateway's protection */
  risk: RiskCode | null;
}

/** Where a diff function (the core's, or a feature's Feature.diff) reports a change. */
export interface DiffSink {
  add(section: Section, kind: Change['kind'], subject: string, text: string, risk?: RiskCode | null): void;
}

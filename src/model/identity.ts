// The identity headers the gateway may send upstream (auth sets them; every route removes a
// client's copy of each name, with or without auth), shared by the rules and the auth feature.
export const DEFAULT_IDENTITY_HEADERS = {
  client: 'X-Gateway-Client',
  role: 'X-Gateway-Role',
  tier: 'X-Gateway-Tier',
  method: 'X-Gateway-Auth',
  claims: 'X-Gateway-Claims',
} as const;

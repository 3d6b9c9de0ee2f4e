// JSON helpers shared by the JWT verifier and the routing keys (njs subset).

export type JsonObject = { [name: string]: unknown };

// A top-level JSON object; null for anything else (empty, invalid JSON, arrays, scalars).
export function parseObject(text: string | undefined | null): JsonObject | null {
  if (typeof text !== 'string' || text.length === 0) {
    return null;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    return null;
  }
  return v as JsonObject;
}

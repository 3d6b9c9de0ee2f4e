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

// Whether `o` has its own member `name` (a JSON document's, never an inherited one such as
// "constructor"). ({}).hasOwnProperty rather than Object.prototype.hasOwnProperty: in a
// request VM the global `Object` costs ~2,500 instructions a lookup, and the JWT checks ask
// this for several claims a token.
export function hasOwn(o: JsonObject, name: string): boolean {
  return {}.hasOwnProperty.call(o, name);
}

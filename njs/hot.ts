// Handlers called on the hot path, instantiated on their own in each request's VM clone:
// the bundle puts them (and only what they use) at the module's top level and the rest of
// gateway.ts inside a function that runs only for requests calling another handler
// (src/njs/bundle.ts, layeredBundle). Every handler here is also exported by gateway.ts.
import { apiKey } from './lib/handlers.ts';

export default { apiKey: apiKey };

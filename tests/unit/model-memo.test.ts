import { describe, expect, it } from 'vitest';
import { markModelFinal, perModel } from '../../src/model/memo.ts';
import type { GatewayModel } from '../../src/model/types.ts';

describe('perModel', () => {
  const model = (routes: number) => ({ routes: Array.from({ length: routes }, (_, i) => ({ name: `r${i}` })) }) as unknown as GatewayModel;

  it('computes afresh for a model that is not final (it may still change)', () => {
    let calls = 0;
    const count = perModel((m) => (calls++, m.routes.length));
    const m = model(2);
    expect(count(m)).toBe(2);
    m.routes.push({ name: 'r2' } as never);
    expect(count(m)).toBe(3);
    expect(calls).toBe(2);
  });

  it('computes once per final model, separately for each model and each derivation', () => {
    let calls = 0;
    const count = perModel((m) => (calls++, m.routes.length));
    const names = perModel((m) => (calls++, m.routes.map((r) => r.name).join(',')));
    const a = model(3);
    const b = model(1);
    markModelFinal(a);
    markModelFinal(b);
    for (let i = 0; i < 5; i++) {
      expect(count(a)).toBe(3);
      expect(count(b)).toBe(1);
      expect(names(a)).toBe('r0,r1,r2');
    }
    expect(calls).toBe(3);
  });
});

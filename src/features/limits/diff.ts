// The limits feature's part of `gatewayctl diff`: rate and connection zones added, removed,
// loosened (flagged) or tightened; token budgets and r/h, r/d windows the same way.
import type { ConnZone, RateZone, TokenZone, WindowZone } from '../../model/types.ts';
import type { DiffSink, RiskCode } from '../../diff/types.ts';
import { byName, extraFields, fieldText, keyText, names, rateText, same } from '../../diff/semantic.ts';

export function diffRateZones(c: DiffSink, as: RateZone[], bs: RateZone[]): void {
  const a = byName(as);
  const b = byName(bs);
  for (const n of names(as, bs)) {
    const za = a.get(n);
    const zb = b.get(n);
    const s = `rate limit ${n}`;
    if (!za && zb) {
      c.add('limits', 'added', s, `rate limit ${n} added: ${rateText(zb)}`);
      continue;
    }
    if (za && !zb) {
      c.add('limits', 'removed', s, `rate limit ${n} removed (was ${rateText(za)})`);
      continue;
    }
    if (!za || !zb) continue;
    const say = (text: string, risk: RiskCode | null = null) => c.add('limits', 'changed', s, `${s}: ${text}`, risk);
    if (za.rate !== zb.rate) {
      const looser = zb.ratePerSecond > za.ratePerSecond;
      const tighter = zb.ratePerSecond < za.ratePerSecond;
      say(`${za.rate} → ${zb.rate}${looser ? ' (loosened)' : tighter ? ' (tightened)' : ''}`, looser ? 'rate-limit-loosened' : null);
    }
    if (za.burst !== zb.burst) {
      const looser = zb.burst > za.burst;
      say(`burst ${za.burst} → ${zb.burst} (${looser ? 'loosened' : 'tightened'})`, looser ? 'rate-limit-loosened' : null);
    }
    if (za.nodelay !== zb.nodelay || za.delay !== zb.delay) {
      const mode = (z: RateZone) => (z.nodelay ? 'nodelay' : z.delay !== null ? `delay ${z.delay}` : 'queue (delay all)');
      say(`excess handling ${mode(za)} → ${mode(zb)}`);
    }
    if (!same(za.key, zb.key)) say(`key ${keyText(za.key)} → ${keyText(zb.key)}`);
    if (za.size !== zb.size) say(`zone size ${za.size} → ${zb.size}`);
    for (const f of extraFields(za, zb, RATE_KEYS)) say(fieldText(f));
  }
}

const RATE_KEYS = new Set(['name', 'key', 'rate', 'ratePerSecond', 'burst', 'nodelay', 'delay', 'size', 'at']);
const CONN_KEYS = new Set(['name', 'key', 'max', 'size', 'at']);

export function diffConnZones(c: DiffSink, as: ConnZone[], bs: ConnZone[]): void {
  const a = byName(as);
  const b = byName(bs);
  for (const n of names(as, bs)) {
    const za = a.get(n);
    const zb = b.get(n);
    const s = `connection limit ${n}`;
    if (!za && zb) {
      c.add('limits', 'added', s, `connection limit ${n} added: max ${zb.max}, key ${keyText(zb.key)}`);
      continue;
    }
    if (za && !zb) {
      c.add('limits', 'removed', s, `connection limit ${n} removed (was max ${za.max})`);
      continue;
    }
    if (!za || !zb) continue;
    const say = (text: string, risk: RiskCode | null = null) => c.add('limits', 'changed', s, `${s}: ${text}`, risk);
    if (za.max !== zb.max) {
      const looser = zb.max > za.max;
      say(`max ${za.max} → ${zb.max} (${looser ? 'loosened' : 'tightened'})`, looser ? 'conn-limit-loosened' : null);
    }
    if (!same(za.key, zb.key)) say(`key ${keyText(za.key)} → ${keyText(zb.key)}`);
    if (za.size !== zb.size) say(`zone size ${za.size} → ${zb.size}`);
    for (const f of extraFields(za, zb, CONN_KEYS)) say(fieldText(f));
  }
}


const WINDOW_SECONDS = { minute: 60, hour: 3600, day: 86400 } as const;

/** Token budgets and r/h, r/d windows: added, removed, loosened (flagged) or tightened, by allowance per second. */
export function diffBudgetZones(c: DiffSink, as: (TokenZone | WindowZone)[], bs: (TokenZone | WindowZone)[], kind: 'token budget' | 'request window'): void {
  const a = byName(as);
  const b = byName(bs);
  const amount = (z: TokenZone | WindowZone) => ('tokens' in z ? z.tokens : z.requests);
  const text = (z: TokenZone | WindowZone) => `${amount(z)} ${'tokens' in z ? 'tokens' : 'requests'} a ${z.window} by ${z.key}`;
  const perSecond = (z: TokenZone | WindowZone) => amount(z) / WINDOW_SECONDS[z.window];
  for (const n of names(as, bs)) {
    const za = a.get(n);
    const zb = b.get(n);
    const s = `${kind} ${n}`;
    if (!za && zb) {
      c.add('limits', 'added', s, `${s} added: ${text(zb)}`);
      continue;
    }
    if (za && !zb) {
      c.add('limits', 'removed', s, `${s} removed (was ${text(za)})`, 'rate-limit-loosened');
      continue;
    }
    if (!za || !zb || same({ ...za, at: null }, { ...zb, at: null })) continue;
    const looser = perSecond(zb) > perSecond(za) || ('onExceed' in za && 'onExceed' in zb && za.onExceed === 'refuse' && zb.onExceed === 'clamp');
    c.add('limits', 'changed', s, `${s}: ${text(za)} → ${text(zb)}${looser ? ' (loosened)' : ''}`, looser ? 'rate-limit-loosened' : null);
  }
}

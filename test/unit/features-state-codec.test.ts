// The checkpoint's binary encoding (state-codec.ts): every state comes back exactly as JSON would give it back, and
// checkpoints written as JSON before it (format 1 and 2) are still read through the same decodeState.
import { describe, expect, it } from 'vitest';
import { DAY_MS, MINUTE_MS } from '../../processors/features/definitions.js';
import { foldEvents, type SourcedEvent } from '../../processors/features/logic.js';
import { decodeBinaryState, encodeBinaryState, isBinaryState } from '../../processors/features/state-codec.js';
import {
  emptyState,
  mergeStates,
  prune,
  type FeatureEvent,
  type FeatureState,
} from '../../processors/features/state.js';
import { decodeState, encodeState } from '../../processors/features/store.js';
import { seededRandom } from '../../processors/identity/model.js';

const T0 = Date.UTC(2026, 0, 1);
const CATEGORIES = ['books', 'toys', 'garden', '__proto__', 'constructor', 'Küche', '家居'];
const BRANDS = ['acme', 'toString', 'Ünïcode brand', null, ''];

/** A customer's state from `n` random events over ~400 days: every part of the state is in use. */
function randomState(seed: number, n: number): FeatureState {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)] as T;
  const state = emptyState();
  const records: SourcedEvent[] = [];
  for (let i = 0; i < n; i++) {
    const timeMs = T0 + Math.floor(rnd() * 400 * DAY_MS) + (rnd() < 0.1 ? 0.5 : 0); // a fraction now and then
    const sessionId = rnd() < 0.9 ? `s-${Math.floor(timeMs / (3 * 3_600_000))}` : null;
    const event: FeatureEvent =
      rnd() < 0.3
        ? {
            kind: 'transaction',
            eventId: `e${i}`,
            timeMs,
            purchase: rnd() < 0.85,
            totalMinor: Math.floor(rnd() * 1e6) - 5e5,
            sessionId,
            lines: [{ category: pick(CATEGORIES), amountMinor: Math.floor(rnd() * 9_000), brand: pick(BRANDS) }],
            coupon: rnd() < 0.3,
          }
        : {
            kind: 'click',
            eventId: `e${i}`,
            timeMs,
            type: pick(['VIEW', 'SEARCH', 'ADD_TO_CART', 'PURCHASE'] as const),
            sessionId,
            category: rnd() < 0.8 ? pick(CATEGORIES) : null,
            review: rnd() < 0.1 ? Math.floor(rnd() * 2_000) - 1_000 : null,
          };
    records.push({ event, source: `topic.ü:${i % 3}`, offset: i, stream: `${event.kind[0]}|c-${i % 2}` });
  }
  records.sort((a, b) => a.event.timeMs - b.event.timeMs);
  records.forEach((r, i) => (records[i] = { ...r, offset: i }));
  for (let i = 0; i < records.length; i += 9) {
    foldEvents(state, records.slice(i, i + 9), 3 * DAY_MS);
    prune(state); // as every flush does: tombstones and dropped buckets are part of what is encoded
  }
  return state;
}

/** What a state is as the JSON checkpoint gave it back (the reference for "exactly"). */
const viaJson = (s: FeatureState) => JSON.parse(JSON.stringify(s)) as FeatureState;

describe('binary feature state', () => {
  it('gives back exactly the state JSON gives back, for states using every part', () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const state = randomState(seed, 50 + seed * 120);
      const bytes = encodeBinaryState(state);
      expect(isBinaryState(bytes)).toBe(true);
      const back = decodeBinaryState(bytes);
      expect(back).toEqual(viaJson(state));
      expect(bytes.length).toBeLessThan(JSON.stringify(state).length);
    }
  });

  it('keeps names of Object.prototype members as plain names and folds on after a round trip', () => {
    const state = randomState(7, 400);
    const back = decodeBinaryState(encodeBinaryState(state));
    expect(Object.getPrototypeOf(back.c)).toBe(Object.prototype);
    expect(Object.keys(back.c).sort()).toEqual(Object.keys(state.c).sort());
    const other = randomState(8, 200);
    mergeStates(state, other);
    mergeStates(back, decodeBinaryState(encodeBinaryState(other)));
    expect(back).toEqual(viaJson(state));
  });

  it('encodes any number exactly: nulls, negatives, fractions, −0, large integers, NaN and infinities', () => {
    const state = emptyState();
    Object.assign(state, { fp: null, lp: -0, ol: Number.MAX_SAFE_INTEGER, sl: -Number.MAX_SAFE_INTEGER, late: 0.25 });
    state.m = [29_000_000, 1.5, -3, 2 ** 40];
    state.h = [5, Number.NaN, Infinity, -Infinity, 2 ** 53 + 2];
    state.sv = [T0 + MINUTE_MS, T0, 0, 1];
    state.s = ['a session'];
    state.wm = { 'x|y': 2 ** 31, 'x|z': 2 ** 32 - 1 };
    const back = decodeBinaryState(encodeBinaryState(state));
    expect(back).toEqual(state); // toEqual tells −0 from 0 and NaN equals NaN
    expect(Object.is(back.lp, -0)).toBe(true);
    expect(back.fp).toBeNull();
  });

  it('refuses a truncated or corrupt value instead of giving a wrong state', () => {
    const bytes = encodeBinaryState(randomState(9, 300));
    for (const cut of [2, 10, Math.floor(bytes.length / 2), bytes.length - 1]) {
      expect(() => decodeBinaryState(bytes.subarray(0, cut))).toThrow(RangeError);
    }
    expect(() => decodeBinaryState(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(/trailing bytes/);
    expect(() => decodeBinaryState(Buffer.from('{"v":2}'))).toThrow(/not a binary feature state/);
  });

  it('reads every checkpoint through decodeState: binary, and JSON written before it, as text or bytes', () => {
    const state = randomState(10, 300);
    const text = encodeState(state); // what the processor stores: the binary encoding as base64
    expect(text).toBe(encodeBinaryState(state).toString('base64'));
    expect(decodeState(text)).toEqual(viaJson(state));
    expect(decodeState(Buffer.from(text))).toEqual(viaJson(state)); // as Redis gives it back (hmgetBuffer)
    expect(decodeState(encodeBinaryState(state))).toEqual(viaJson(state)); // raw bytes too
    expect(decodeState(JSON.stringify(state))).toEqual(viaJson(state));
    expect(decodeState(Buffer.from(JSON.stringify(state)))).toEqual(viaJson(state));
    // Format 1 JSON (string-keyed buckets) still converts exactly; features-state.test.ts checks the conversion.
    const v1 = { ...viaJson(emptyState()), v: undefined, m: {}, h: {}, d: {}, c: {}, s: {}, sv: undefined };
    expect(decodeState(JSON.stringify(v1))).toEqual(emptyState());
  });
});

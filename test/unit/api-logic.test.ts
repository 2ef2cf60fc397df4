// The prediction API's pure steps: when a cached score may be served, the feature hash back into the exact features
// the stream computed, the seed's ad rule with its step-downs, stable weighted creative choice, and catalog checks.
import { describe, expect, it } from 'vitest';
import { CreativeCatalog } from '../../processors/api/creatives.js';
import {
  cachedPrediction,
  decideAd,
  describeRef,
  featuresFromHash,
  identityKeyOf,
  pickCreative,
} from '../../processors/api/logic.js';
import { DAY_MS, DEFAULT_CUT_POINTS, FEATURE_NAMES } from '../../processors/features/definitions.js';
import { currentFeatures, hashFields } from '../../processors/features/logic.js';
import { applyEvent, emptyState } from '../../processors/features/state.js';

const NOW = Date.UTC(2026, 11, 5, 12);
const HOUR = 3_600_000;

function scoreHash(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    intent_score: '0.8125',
    intent_level: 'HIGH',
    predicted_category: 'books',
    purchase_probability_7d: '0.5',
    model_version: 'v1',
    as_of_ms: String(NOW - 2 * HOUR),
    feature_time_ms: String(NOW - 3 * HOUR),
    scored_at_ms: String(NOW - HOUR),
    ...overrides,
  };
}

const catalog = CreativeCatalog.parse({
  creatives: [
    { id: 'brand-a', type: 'BRAND', title: 'A', weight: 3 },
    { id: 'brand-b', type: 'BRAND', title: 'B' },
    { id: 'cat-books', type: 'CATEGORY', category: 'books', title: 'Books' },
    { id: 'prod-books-1', type: 'PRODUCT', category: 'books', title: 'Book 1' },
    { id: 'prod-books-2', type: 'PRODUCT', category: 'books', title: 'Book 2' },
    { id: 'cat-toys', type: 'CATEGORY', category: 'toys', title: 'Toys' },
  ],
});
const T = { high: 0.7, medium: 0.4 };

describe('cached scores', () => {
  it('serves a complete hash scored within the TTL, with the times as ISO strings', () => {
    expect(cachedPrediction('c-1', scoreHash(), NOW, 6 * HOUR)).toEqual({
      customer_id: 'c-1',
      intent_score: 0.8125,
      intent_level: 'HIGH',
      purchase_probability_7d: 0.5,
      predicted_category: 'books',
      model_version: 'v1',
      scored_at: new Date(NOW - HOUR).toISOString(),
      feature_time: new Date(NOW - 3 * HOUR).toISOString(),
      as_of: new Date(NOW - 2 * HOUR).toISOString(),
      source: 'cache',
    });
    expect(cachedPrediction('c-1', scoreHash({ predicted_category: '' }), NOW, 6 * HOUR)?.predicted_category).toBe(
      null,
    );
  });

  it('does not serve a score older than the TTL, an absent one, or an incomplete one', () => {
    expect(cachedPrediction('c-1', scoreHash({ scored_at_ms: String(NOW - 6 * HOUR - 1) }), NOW, 6 * HOUR)).toBe(null);
    expect(cachedPrediction('c-1', scoreHash({ scored_at_ms: String(NOW - 6 * HOUR) }), NOW, 6 * HOUR)).not.toBe(null);
    expect(cachedPrediction('c-1', {}, NOW, 6 * HOUR)).toBe(null);
    for (const field of Object.keys(scoreHash())) {
      if (field === 'predicted_category') continue;
      const rest = Object.fromEntries(Object.entries(scoreHash()).filter(([f]) => f !== field));
      expect(cachedPrediction('c-1', rest, NOW, 6 * HOUR), field).toBe(null);
    }
    expect(cachedPrediction('c-1', scoreHash({ intent_score: 'NaN' }), NOW, 6 * HOUR)).toBe(null);
    expect(cachedPrediction('c-1', scoreHash({ intent_level: 'SOMEWHAT' }), NOW, 6 * HOUR)).toBe(null);
  });
});

describe('features from the ad server hash', () => {
  it('gives back exactly the features the stream wrote', () => {
    const state = emptyState();
    const t0 = NOW - 20 * DAY_MS;
    applyEvent(state, {
      kind: 'transaction',
      eventId: 'tx-1',
      timeMs: t0,
      purchase: true,
      totalMinor: 4_599,
      sessionId: 's-1',
      lines: [
        { category: 'books', amountMinor: 2_599 },
        { category: 'toys', amountMinor: 2_000 },
      ],
    });
    for (const [i, type] of (['VIEW', 'SEARCH', 'ADD_TO_CART', 'VIEW'] as const).entries()) {
      applyEvent(state, {
        kind: 'click',
        eventId: `c-${i}`,
        timeMs: t0 + (i + 1) * HOUR * 30,
        type,
        sessionId: 's-2',
        category: 'books',
      });
    }
    const features = currentFeatures(state, DEFAULT_CUT_POINTS);
    expect(features).not.toBe(null);
    if (!features) return;
    const flat = hashFields(features, 7, NOW);
    const hash: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) hash[flat[i] as string] = flat[i + 1] as string;
    const back = featuresFromHash(hash);
    expect(back?.values).toEqual(features.values);
    expect(back?.topCategory).toBe(features.topCategory);
    expect([...(back?.affinity ?? [])].sort()).toEqual([...features.affinity].sort());
    expect(back?.featureTimeMs).toBe(features.featureTimeMs);
    expect(back?.refMs).toBe(features.refMs);
  });

  it('refuses a merge alias, an empty hash, or a hash missing a feature', () => {
    expect(featuresFromHash({ merged_into: 'c-2' })).toBe(null);
    expect(featuresFromHash({})).toBe(null);
    const partial: Record<string, string> = { feature_time_ms: '5' };
    for (const name of FEATURE_NAMES.slice(1)) partial[name] = '1';
    expect(featuresFromHash(partial)).toBe(null);
  });

  it('reads a hash an older processor wrote when the model does not need what it lacks', () => {
    const features = currentFeatures(
      (() => {
        const s = emptyState();
        applyEvent(s, {
          kind: 'click',
          eventId: 'e1',
          timeMs: NOW - HOUR,
          type: 'VIEW',
          sessionId: 's',
          category: 'books',
        });
        return s;
      })(),
      DEFAULT_CUT_POINTS,
    );
    if (!features) throw new Error('no features');
    const flat = hashFields(features, 1, NOW);
    const old: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) old[flat[i] as string] = flat[i + 1] as string;
    delete old['frequency_365d']; // written before the year features existed
    expect(featuresFromHash(old)).toBe(null);
    const withoutYear = new Set(FEATURE_NAMES.filter((n) => n !== 'frequency_365d'));
    const read = featuresFromHash(old, withoutYear);
    expect(read?.values.frequency_365d).toBeNaN();
    expect(read?.values.frequency_30d).toBe(features.values.frequency_30d);
    expect(featuresFromHash(old, new Set(FEATURE_NAMES))).toBe(null);
  });
});

describe('ad decisions', () => {
  it('follows the seed rule at the thresholds', () => {
    expect(decideAd('c-1', 0.7, 'books', catalog, T).adType).toBe('PRODUCT');
    expect(decideAd('c-1', 0.6999, 'books', catalog, T).adType).toBe('CATEGORY');
    expect(decideAd('c-1', 0.4, 'books', catalog, T)).toMatchObject({
      adType: 'CATEGORY',
      creative: { id: 'cat-books' },
      category: 'books',
    });
    expect(decideAd('c-1', 0.3999, 'books', catalog, T)).toMatchObject({ adType: 'BRAND', category: null });
    expect(decideAd('c-1', 0.9, 'books', catalog, { high: 0.95, medium: 0.85 }).adType).toBe('CATEGORY');
  });

  it('steps down when the catalog has no creative of the wanted kind for the category', () => {
    expect(decideAd('c-1', 0.9, 'toys', catalog, T)).toMatchObject({
      adType: 'CATEGORY',
      creative: { id: 'cat-toys' },
    });
    expect(decideAd('c-1', 0.9, 'garden', catalog, T).adType).toBe('BRAND');
    expect(decideAd('c-1', 0.9, null, catalog, T).adType).toBe('BRAND');
  });

  it('picks creatives stably per customer and in proportion to their weights', () => {
    const first = decideAd('c-42', 0.9, 'books', catalog, T).creative.id;
    for (let i = 0; i < 5; i++) expect(decideAd('c-42', 0.9, 'books', catalog, T).creative.id).toBe(first);
    const counts = new Map<string, number>();
    for (let i = 0; i < 8_000; i++) {
      const id = pickCreative(catalog.brand, `c-${i}`).id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // brand-a weighs 3, brand-b 1: 6,000 and 2,000 expected (binomial sd ≈ 39).
    expect(counts.get('brand-a')).toBeGreaterThan(5_800);
    expect(counts.get('brand-b')).toBeGreaterThan(1_800);
  });
});

describe('creative catalog', () => {
  it('names every problem of a bad catalog', () => {
    expect(() =>
      CreativeCatalog.parse({
        creatives: [
          { id: 'x', type: 'PRODUCT', title: 'no category' },
          { id: 'x', type: 'CATEGORY', category: 'books', title: 'dup' },
        ],
      }),
    ).toThrow(/PRODUCT and CATEGORY creatives need a category.*|BRAND creative is required/);
    expect(() => CreativeCatalog.parse({ creatives: [{ id: 'b', type: 'BRAND', title: 'B', weight: 0 }] })).toThrow(
      /weight/,
    );
    expect(() => CreativeCatalog.parse({ creatives: [{ id: 'b', type: 'MOVIE', title: 'B' }] })).toThrow(/type/);
    expect(() => CreativeCatalog.load('does/not/exist.json')).toThrow(/creative catalog does\/not\/exist.json/);
  });

  it('loads the sample catalog the API ships with', () => {
    const sample = CreativeCatalog.load('processors/api/creatives.sample.json');
    expect(sample.brand.length).toBeGreaterThan(0);
    expect(sample.byCategory('PRODUCT', 'electronics').length).toBeGreaterThan(0);
  });
});

describe('customer refs', () => {
  it('map platform ids to identity graph keys', () => {
    expect(identityKeyOf({ platform: 'shopwave', platform_customer_id: 'u:7' })).toBe('shopwave:u:7');
    expect(identityKeyOf({ customer_id: 'c-1' })).toBe(null);
    expect(describeRef({ customer_id: 'c-1' })).toBe('c-1');
    expect(describeRef({ platform: 'shopwave', platform_customer_id: '9' })).toBe('shopwave:9');
  });
});

import { describe, expect, it } from 'vitest';
import { RootCache } from '../../processors/identity/root-cache.js';

describe('RootCache', () => {
  it('follows merges heard of before or after the root was read, through chains', () => {
    const cache = new RootCache();
    cache.merged('c-5', 'c-3'); // heard of before the read
    cache.set('shopwave:a', 'c-5');
    cache.set('marketly:b', 'c-3');
    expect(cache.get('shopwave:a')).toBe('c-3');
    cache.merged('c-3', 'c-1'); // after: both identities move, a through two merges
    expect(cache.get('shopwave:a')).toBe('c-1');
    expect(cache.get('marketly:b')).toBe('c-1');
    expect(cache.get('urbancart:c')).toBeUndefined();
  });

  it('ignores a self-merge, survives a corrupt cycle, and drops everything past its size', () => {
    const cache = new RootCache(2);
    cache.merged('c-1', 'c-1');
    cache.set('k1', 'c-1');
    expect(cache.get('k1')).toBe('c-1');
    cache.merged('c-1', 'c-2');
    cache.merged('c-2', 'c-1'); // cannot happen in the graph; must not hang
    expect(['c-1', 'c-2']).toContain(cache.get('k1'));
    cache.set('k2', 'c-9');
    cache.set('k3', 'c-9'); // third identity: the cache starts over
    expect(cache.size).toBe(1);
    expect(cache.get('k1')).toBeUndefined();
    expect(cache.get('k3')).toBe('c-9');
  });
});

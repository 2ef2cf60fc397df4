// A dead letter never fails for its own size: an original too large for the broker is cut, with its size and digest.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  deadLetterOf,
  keptOriginal,
  MAX_ORIGINAL_HEADER_BYTES,
  MAX_ORIGINAL_KEY_BYTES,
  MAX_ORIGINAL_VALUE_BYTES,
} from '../../processors/runtime/dead-letter.js';
import { sendsOf } from '../../processors/runtime/send-chunks.js';

const message = (value: Buffer | null, key: Buffer | null = Buffer.from('shop:1'), headers = {}) => ({
  key,
  value,
  offset: '3',
  timestamp: '1000',
  attributes: 0,
  headers,
});

describe('dead-letter originals', () => {
  it('keeps a small original whole, with its size and digest', () => {
    const value = Buffer.from([0, 0, 0, 0, 1, 2]);
    const kept = keptOriginal(message(value, Buffer.from('k'), { h: 'v' }));
    expect(kept.value).toEqual(value);
    expect(kept.key).toEqual(Buffer.from('k'));
    expect(kept.headers).toEqual([{ key: 'h', value: Buffer.from('v') }]);
    expect(kept.cuts).toEqual([]);
    expect(kept.valueBytes).toBe(6);
    expect(kept.valueSha256).toBe(createHash('sha256').update(value).digest('hex'));
    expect(keptOriginal(message(null)).valueBytes).toBe(0);
  });

  it('cuts a 900 KB value, a large key and too many headers to their budgets and says so in the reason', () => {
    const value = Buffer.alloc(900 * 1024, 0x61);
    const key = Buffer.alloc(20_000, 0x6b);
    const headers = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`h${i}`, 'x'.repeat(1_000)]));
    const kept = keptOriginal(message(value, key, headers));
    expect(kept.value?.length).toBe(MAX_ORIGINAL_VALUE_BYTES);
    expect(kept.key?.length).toBe(MAX_ORIGINAL_KEY_BYTES);
    const headerBytes = kept.headers.reduce((n, h) => n + h.key.length + (h.value?.length ?? 0), 0);
    expect(headerBytes).toBeLessThanOrEqual(MAX_ORIGINAL_HEADER_BYTES);
    expect(kept.valueBytes).toBe(value.length);
    expect(kept.valueSha256).toBe(createHash('sha256').update(value).digest('hex'));
    expect(kept.cuts).toHaveLength(3);
    const dl = deadLetterOf(
      'identity-resolver',
      {
        topic: 'clicks.raw.v1',
        partition: 0,
        message: message(value, key, headers),
        code: 'RECORD_INVALID',
        reason: 'r',
      },
      0,
      kept,
    );
    expect(dl.reason).toMatch(
      /^r \[original cut to fit the broker: 12 headers dropped .*key 20000 → 8192 bytes .*value 921600 → 262144/,
    );
    expect(dl.originalValue?.length).toBe(MAX_ORIGINAL_VALUE_BYTES);
  });

  it('groups dead letters into sends of bounded size, in order, one topic entry per run of a topic', () => {
    const big = (topic: string) => ({ topic, message: { key: null, value: Buffer.alloc(200 * 1024) } });
    const sends = sendsOf([big('a'), big('a'), big('b'), big('a')]);
    expect(sends.map((s) => s.map((t) => `${t.topic}${t.messages.length}`))).toEqual([['a2'], ['b1', 'a1']]);
    expect(sendsOf([{ topic: 'a', message: { value: Buffer.alloc(600 * 1024) } }])).toHaveLength(1);
  });
});

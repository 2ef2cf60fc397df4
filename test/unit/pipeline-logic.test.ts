import { describe, expect, it } from 'vitest';
import { latencyWindows, percentile } from '../bench/pipeline-logic.js';

describe('pipeline bench logic', () => {
  it('takes nearest-rank percentiles', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
  });

  it('splits latency by send time into windows from the first send, empty windows left out', () => {
    // Sent at 1,000 ms + 0..2,999 ms and 5,000..5,999 ms after it; latency falls from window to window.
    const sent: number[] = [];
    const latency: number[] = [];
    for (let i = 0; i < 3_000; i++) {
      sent.push(1_000 + i);
      latency.push(i < 1_000 ? 100 + (i % 10) : i < 2_000 ? 50 : 20);
    }
    for (let i = 0; i < 1_000; i++) {
      sent.push(6_000 + i);
      latency.push(i === 999 ? 900 : 10);
    }
    const windows = latencyWindows(sent, latency, 1_000);
    expect(windows.map((w) => w.fromS)).toEqual([0, 1, 2, 5]);
    expect(windows.map((w) => w.events)).toEqual([1_000, 1_000, 1_000, 1_000]);
    expect(windows[0]).toMatchObject({ p50Ms: 104, p99Ms: 109 });
    expect(windows[1]).toMatchObject({ p50Ms: 50, p99Ms: 50 });
    expect(windows[3]).toMatchObject({ p50Ms: 10, p99Ms: 10 });
    expect(latencyWindows(sent, latency, 10_000)).toEqual([{ fromS: 0, events: 4_000, p50Ms: 50, p99Ms: 109 }]);
  });

  it('refuses mismatched inputs and empty windows', () => {
    expect(() => latencyWindows([1], [], 1_000)).toThrow(RangeError);
    expect(() => latencyWindows([1], [1], 0)).toThrow(RangeError);
    expect(latencyWindows([], [], 1_000)).toEqual([]);
  });
});

// Data freshness per input topic: now minus the newest event time read, computed at scrape time, per processor.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { InputFreshness } from '../../processors/runtime/metrics.js';

async function values(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`${name} is not registered`);
  const { values: series } = await metric.get();
  return Object.fromEntries(series.map((v) => [`${v.labels['processor']}|${v.labels['topic']}`, v.value]));
}

describe('InputFreshness', () => {
  it('reports now minus the newest event time per processor and topic, never going back to an older event', async () => {
    const registry = new Registry();
    let now = 1_000_000;
    const resolver = new InputFreshness(registry, 'identity-resolver', () => now);
    const features = new InputFreshness(registry, 'feature-processor', () => now);
    expect(await values(registry, 'input_freshness_seconds')).toEqual({}); // nothing read yet: no series

    resolver.observe('transactions.raw.v1', [990_000, 995_000, 970_000]);
    resolver.observe('transactions.raw.v1', [980_000]); // a late event does not make the topic look older
    resolver.observe('clicks.raw.v1', []);
    features.observe('customer.transactions.v1', [900_000]);
    expect(await values(registry, 'input_freshness_seconds')).toEqual({
      'identity-resolver|transactions.raw.v1': 5,
      'feature-processor|customer.transactions.v1': 100,
    });

    now += 60_000; // a minute without events: the freshness grows at scrape time
    expect((await values(registry, 'input_freshness_seconds'))['identity-resolver|transactions.raw.v1']).toBe(65);
    expect((await values(registry, 'input_newest_event_time_seconds'))['identity-resolver|transactions.raw.v1']).toBe(
      995,
    );
  });
});

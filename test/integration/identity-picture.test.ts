// The resolver with the graph held in process (graph-picture.ts) against the resolver on the graph's scripts, on real
// Kafka, registry and Redis: the same messy records give the same clusters, whether the picture starts empty, is read
// from a graph another instance wrote, or has its part refused because another writer came between (the part then runs
// through the scripts).
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { blockingKeys } from '../../processors/identity/blocking.js';
import { IdentityGraph } from '../../processors/identity/graph-store.js';
import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { generateMessy } from '../../processors/identity/messy-logic.js';
import { loadModel } from '../../processors/identity/model.js';
import { PiiCodec } from '../../processors/identity/pii-codec.js';
import { IdentityResolver } from '../../processors/identity/processor.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import { febrlEvents } from '../../processors/producers/replay.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import type { BehaviorEvent } from '../../schemas/generated/types.js';
import { createTestContext, waitFor, within, type TestContext } from '../helpers/context.js';

const model = loadModel(
  JSON.parse(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8')),
);
const contexts: TestContext[] = [];
const clients: Redis[] = [];
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await Promise.all(contexts.map((c) => c.close()));
});

async function context(env: Record<string, string>): Promise<TestContext> {
  const ctx = await within('a test context', 60_000, createTestContext({ topics: true, env }));
  contexts.push(ctx);
  return ctx;
}

function graphOf(ctx: TestContext): IdentityGraph {
  const client = new Redis(ctx.config.REDIS_URL);
  clients.push(client);
  return IdentityGraph.open(client, {
    prefix: ctx.config.TOPIC_PREFIX,
    maxClusterSize: ctx.config.IDENTITY_MAX_CLUSTER_SIZE,
    codec: PiiCodec.fromConfig(ctx.config),
  });
}

/** A resolver instance on the context's topics and graph, started; with its picture counter. */
async function startResolver(ctx: TestContext) {
  const metrics = createMetrics();
  const instance = new IdentityResolver({
    config: ctx.config,
    kafka: ctx.kafka,
    serde: ctx.serde,
    graph: graphOf(ctx),
    model,
    topics: ctx.topics,
    log: createLogger('warn', { test: 'identity-picture' }),
    metrics,
  });
  await within('a resolver starting', 60_000, instance.start());
  const picture = async (): Promise<Record<string, number>> =>
    Object.fromEntries(
      (await metrics.registry.getSingleMetric('identity_graph_picture_total')?.get())?.values.map((v) => [
        String(v.labels['event']),
        v.value,
      ]) ?? [],
    );
  return { instance, picture };
}

async function publish(ctx: TestContext, events: readonly BehaviorEvent[]): Promise<void> {
  const producer = await PlatformProducer.connect(ctx.config, {
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
  });
  try {
    const { refused } = await producer.publishAll(events.map((event) => ({ kind: 'behavior' as const, event })));
    expect(refused).toBe(0);
  } finally {
    await producer.disconnect();
  }
}

async function processed(instance: IdentityResolver, count: number): Promise<void> {
  await waitFor(
    () => Promise.resolve(instance.processedCount),
    (n) => n >= count || instance.failure !== undefined,
    { what: `${count} records resolved`, timeoutMs: 120_000 },
  );
  expect(instance.failure).toBeUndefined();
}

/** The clustering of `keys` as sorted member lists: two runs compare regardless of how ids are labelled. */
async function clustering(ctx: TestContext, keys: readonly string[]): Promise<string[]> {
  const roots = await graphOf(ctx).globalIdOf(keys);
  const byRoot = new Map<string, string[]>();
  for (const key of keys) {
    const root = roots.get(key) ?? `none:${key}`;
    byRoot.set(root, [...(byRoot.get(root) ?? []), key]);
  }
  return [...byRoot.values()].map((members) => members.sort().join('|')).sort();
}

describe('identity resolver with the graph held in process', () => {
  it('clusters as the scripts do: from an empty graph, from a graph read at start, and after another writer', async () => {
    // Rounds of one record: what a record is judged against then depends only on the records before it, not on how
    // fetches cut rounds, so the two runs must cluster alike.
    const [scripts, held] = await Promise.all([
      context({ IDENTITY_ROUND_MAX_RECORDS: '1', IDENTITY_PICTURE_MAX_IDENTITIES: '0' }),
      context({ IDENTITY_ROUND_MAX_RECORDS: '1' }),
    ]);
    const events = febrlEvents(generateMessy({ people: 90, seed: 7 }).rows, 'messy', {
      salt: held.config.IDENTITY_HASH_SALT.reveal(),
      baseTimeMs: Date.UTC(2026, 0, 1),
    }).sort((a, b) => a.eventTimeMs - b.eventTimeMs);
    const keys = [...new Set(events.map((e) => `${e.platform}:${e.platformCustomerId ?? ''}`))];
    const [a, b, c] = [events.slice(0, 300), events.slice(300, 550), events.slice(550)];
    expect(c.length).toBeGreaterThan(100);
    // A writer outside the resolver: an identity of its own, sharing nothing with the records.
    const outside = toIdentityRecord('outside', 'o-1', { ...NO_ATTRIBUTES, emailSha256: 'e'.repeat(64) });
    const writeOutside = (ctx: TestContext) =>
      graphOf(ctx).register(outside, blockingKeys(outside), { eventId: 'outside-1', eventTimeMs: 1 });

    // The scripts only, every record through register-search.lua and union-batch.lua.
    const one = await startResolver(scripts);
    await publish(scripts, [...a, ...b]);
    await processed(one.instance, a.length + b.length);
    await writeOutside(scripts);
    await publish(scripts, c);
    await processed(one.instance, events.length);
    await one.instance.stop();
    expect(await one.picture()).toEqual({});

    // Held in process: the first instance starts on an empty graph; the second reads what the first wrote.
    const first = await startResolver(held);
    await publish(held, a);
    await processed(first.instance, a.length);
    expect(await first.picture()).toEqual({ loaded: 1 });
    await first.instance.stop();
    const second = await startResolver(held);
    await publish(held, b);
    await processed(second.instance, b.length);
    expect(await second.picture()).toEqual({ loaded: 1 });
    // Another writer: the next part's write is refused and the part runs through the scripts.
    await writeOutside(held);
    await publish(held, c);
    await processed(second.instance, b.length + c.length);
    expect(await second.picture()).toEqual({ loaded: 1, refused: 1 });
    await second.instance.stop();

    const expected = await clustering(scripts, keys);
    expect(expected.length).toBeLessThan(keys.length); // records did link
    expect(await clustering(held, keys)).toEqual(expected);
  }, 300_000);
});

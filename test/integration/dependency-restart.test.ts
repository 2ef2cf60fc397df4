// A Redis restart under the identity resolver. The resolver's graph lives on a private Redis, started through the local
// stack's own service module (its own data dir and port; the suite's services are never stopped), which is stopped
// while records wait and started again: the resolver rides it out and resolves every record, none skipped.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { IdentityGraph } from '../../processors/identity/graph-store.js';
import { loadModel } from '../../processors/identity/model.js';
import { PiiCodec } from '../../processors/identity/pii-codec.js';
import { IdentityResolver } from '../../processors/identity/processor.js';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import type { FatalFailure } from '../../processors/runtime/liveness.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import { startService, stopService } from '../../processors/tools/stack/stack.js';
import { groupLag } from '../../processors/pipeline.js';
import { sampleBehavior } from '../fixtures/events.js';
import { createTestContext, waitFor, type TestContext } from '../helpers/context.js';

const model = loadModel(
  JSON.parse(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8')),
);
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** A Redis of this test's own, through the stack's service module: STACK_DIR and port are the test's. */
async function privateRedis(): Promise<{ url: string; stop: () => Promise<unknown>; start: () => Promise<unknown> }> {
  const dir = await mkdtemp(join(tmpdir(), 'patternos-redis-restart-'));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], STACK_DIR: dir, STACK_REDIS_PORT: String(port) };
  const options = { env, log: () => undefined };
  const start = () => startService('redis', options);
  const stop = () => stopService('redis', options);
  await start();
  cleanups.push(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  return { url: `redis://127.0.0.1:${port}`, start, stop };
}

describe('dependency restarts', () => {
  it('the identity resolver rides out a Redis restart and then resolves every record', async () => {
    const redis = await privateRedis();
    const ctx: TestContext = await createTestContext({ topics: true, env: { REDIS_URL: redis.url } });
    cleanups.push(() => ctx.close());
    // A client that gives up on a command quickly (production's waits ~10 s), so each batch fails many times during
    // the outage; and the short stall rule for other failures: 2 failures at one offset over 2 s would end it.
    const client = new Redis(redis.url, { enableAutoPipelining: true, maxRetriesPerRequest: 1 });
    cleanups.push(() => {
      client.disconnect();
      return Promise.resolve();
    });
    const metrics = createMetrics();
    const failures: FatalFailure[] = [];
    const resolver = new IdentityResolver({
      config: ctx.config,
      kafka: ctx.kafka,
      serde: ctx.serde,
      graph: IdentityGraph.open(client, {
        prefix: ctx.config.TOPIC_PREFIX,
        maxClusterSize: 100,
        codec: PiiCodec.fromConfig(ctx.config),
      }),
      model,
      topics: ctx.topics,
      log: createLogger('error', { test: 'dependency-restart' }),
      metrics,
      supervision: { maxBatchAttempts: 2, minStallMs: 2_000 },
      onFatal: (f) => failures.push(f),
    });
    await resolver.start();
    cleanups.push(() => resolver.stop());
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    cleanups.push(() => producer.disconnect());
    const group = `${ctx.config.TOPIC_PREFIX}identity-resolver`;
    const raw = [ctx.topics.transactionsRaw, ctx.topics.clicksRaw];
    const send = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        await producer.sendBehavior(sampleBehavior({ eventId: `restart-${i}`, platformCustomerId: `person-${i}` }));
      }
    };
    const caughtUp = (what: string) =>
      waitFor(
        () => groupLag(ctx.admin, group, raw),
        (lag) => lag === 0,
        { timeoutMs: 120_000, what },
      );

    await send(0, 10);
    await caughtUp('the first records resolved');
    await redis.stop();
    await send(10, 20); // new identities: every one needs the graph
    // Down for 8 s: batches fail again and again (each attempt gives up within a second).
    await new Promise((r) => setTimeout(r, 8_000));
    const during = await metrics.registry.getSingleMetric('processor_dependency_outage_seconds')?.get();
    expect(during?.values.find((v) => v.labels['dependency'] === 'redis')?.value).toBeGreaterThan(0);
    expect(await groupLag(ctx.admin, group, raw)).toBeGreaterThan(0); // nothing was skipped meanwhile
    await redis.start();
    await caughtUp('every record resolved after the restart');

    expect(failures).toEqual([]);
    // Every record reached the resolved topic, each identity has its global id in the graph.
    const roots = await IdentityGraph.open(client, {
      prefix: ctx.config.TOPIC_PREFIX,
      maxClusterSize: 100,
      codec: PiiCodec.fromConfig(ctx.config),
    }).globalIdOf(Array.from({ length: 30 }, (_, i) => `shopwave:person-${i}`));
    expect([...roots.values()].filter((id) => id !== null)).toHaveLength(30);
    const ends = await ctx.admin.fetchTopicOffsets(ctx.topics.customerClicks.name);
    expect(ends.reduce((n, p) => n + Number(p.high), 0)).toBeGreaterThanOrEqual(30);
  }, 240_000);
});

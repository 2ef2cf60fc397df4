/**
 * The one wiring of the identity resolver: the entrypoint (main.ts), the in-process pipeline (demo, evaluations,
 * end-to-end tests) and the benchmarks build it here, with the same Redis client settings, model and graph.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Kafka } from 'kafkajs';
import type { TopicCatalog } from '../../topics/catalog.js';
import type { Config } from '../runtime/config.js';
import { reportRedisConnection } from '../runtime/outage.js';
import type { FatalFailure } from '../runtime/liveness.js';
import type { Logger } from '../runtime/log.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { IdentityGraph } from './graph-store.js';
import { loadModel } from './model.js';
import { PiiCodec } from './pii-codec.js';
import { IdentityResolver } from './processor.js';

export interface IdentityAppDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  readonly log: Logger;
  readonly metrics: ProcessorMetrics;
  readonly onFatal?: (failure: FatalFailure) => void;
}

export class IdentityApp {
  readonly redis: Redis;
  readonly graph: IdentityGraph;
  readonly resolver: IdentityResolver;

  constructor(deps: IdentityAppDeps) {
    const { config } = deps;
    // Auto-pipelining: the identities of a batch resolve concurrently, and their graph scripts share round trips.
    this.redis = new Redis(config.REDIS_URL, { enableAutoPipelining: true });
    reportRedisConnection(this.redis, deps.log);
    const codec = PiiCodec.fromConfig(config);
    if (codec.isDevelopmentKey) {
      deps.log.warn('IDENTITY_PII_KEY is the local development key: set your own anywhere but a development machine');
    }
    this.graph = IdentityGraph.open(this.redis, {
      prefix: config.TOPIC_PREFIX,
      maxClusterSize: config.IDENTITY_MAX_CLUSTER_SIZE,
      codec,
    });
    this.resolver = new IdentityResolver({
      config,
      kafka: deps.kafka,
      serde: deps.serde,
      graph: this.graph,
      model: loadModel(JSON.parse(readFileSync(config.IDENTITY_MODEL_PATH, 'utf8'))),
      topics: deps.topics,
      log: deps.log,
      metrics: deps.metrics,
      ...(deps.onFatal ? { onFatal: deps.onFatal } : {}),
    });
  }

  /** Starts consuming once the graph is known to be sealed with this key (else fails here, before any record). */
  async start(): Promise<void> {
    await this.graph.checkFormat();
    await this.resolver.start();
  }

  async stop(): Promise<void> {
    await this.resolver.stop();
    this.redis.disconnect();
  }
}

/**
 * The one wiring of the prediction API: the entrypoint (main.ts), the demo, the integration tests and the benchmark
 * all build it here, so every figure describes what production runs.
 */
import type { AddressInfo } from 'node:net';
import type { ClickHouseClient } from '@clickhouse/client';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import type { TopicCatalog } from '../../topics/catalog.js';
import { erasePerson, type ErasureReport } from '../erasure/erase.js';
import type { ErasureSubject } from '../erasure/logic.js';
import type { Experiment } from '../experiments/definitions.js';
import { dashboards } from '../dashboards/plugin.js';
import { loadExperiments } from '../experiments/load.js';
import { variantThresholdProblems } from '../experiments/logic.js';
import { FeatureStore } from '../features/store.js';
import { IdentityGraph } from '../identity/graph-store.js';
import { DEV_API_KEY, type Config } from '../runtime/config.js';
import { createClickHouse } from '../runtime/clickhouse.js';
import { AppError } from '../runtime/errors.js';
import { SerialProducer } from '../runtime/kafka.js';
import type { Logger } from '../runtime/log.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { watchModels, type ModelWatcher } from '../scoring/model.js';
import { Scorer } from '../scoring/scorer.js';
import { CreativeCatalog } from './creatives.js';
import { ExposurePublisher } from './exposures.js';
import { CustomerReader } from './reader.js';
import { buildServer } from './server.js';

export interface ApiAppDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  readonly log: Logger;
  readonly metrics: ProcessorMetrics;
  /** The creative catalog; default: the file API_CREATIVES_PATH names. */
  readonly catalog?: CreativeCatalog;
  /** The A/B experiments; default: the file EXPERIMENTS_PATH names. */
  readonly experiments?: readonly Experiment[];
  /** The API's clock (tests). @default Date.now */
  readonly now?: () => number;
  /** The warehouse the dashboards read; default: a client for CLICKHOUSE_URL / CLICKHOUSE_DATABASE (owned, closed on stop). */
  readonly clickhouse?: ClickHouseClient;
}

export class ApiApp {
  readonly redis: Redis;
  readonly graph: IdentityGraph;
  readonly store: FeatureStore;
  readonly models: ModelWatcher;
  readonly reader: CustomerReader;
  readonly catalog: CreativeCatalog;
  readonly experiments: readonly Experiment[];
  readonly producer: SerialProducer;
  readonly exposures: ExposurePublisher;
  /** The dashboards' warehouse client (null when DASHBOARDS_ENABLED=false). */
  readonly clickhouse: ClickHouseClient | null;
  private readonly ownsClickHouse: boolean;
  private server: FastifyInstance | undefined;
  /** Opened by the first erasure request (the API otherwise needs neither). */
  private erasureClients: Promise<{ admin: Admin; clickhouse: ClickHouseClient; owned: boolean }> | undefined;

  constructor(private readonly deps: ApiAppDeps) {
    const { config, log } = deps;
    if (config.AD_THRESHOLD_MEDIUM > config.AD_THRESHOLD_HIGH) {
      throw new AppError('CONFIG_INVALID', 'AD_THRESHOLD_MEDIUM must not be above AD_THRESHOLD_HIGH');
    }
    // Auto-pipelining: the reads of one step (graph, score hashes) share one round trip; a request fails fast (503)
    // rather than queueing while Redis is away, or waiting on a Redis that does not answer (API_REDIS_TIMEOUT_MS).
    this.redis = new Redis(config.REDIS_URL, {
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      commandTimeout: config.API_REDIS_TIMEOUT_MS,
    });
    this.graph = IdentityGraph.open(this.redis, {
      prefix: config.TOPIC_PREFIX,
      maxClusterSize: config.IDENTITY_MAX_CLUSTER_SIZE,
    });
    this.store = new FeatureStore(this.redis, {
      prefix: config.TOPIC_PREFIX,
      stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
      featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
      scoresTtlSeconds: config.SCORES_TTL_SECONDS,
    });
    this.models = watchModels(config.MODEL_DIR, log);
    this.reader = new CustomerReader(this.redis, this.graph, this.store, new Scorer(this.models, deps.metrics), {
      maxScoreAgeMs: config.SCORES_TTL_SECONDS * 1000,
    });
    this.catalog = deps.catalog ?? CreativeCatalog.load(config.API_CREATIVES_PATH);
    this.experiments = deps.experiments ?? loadExperiments(config.EXPERIMENTS_PATH);
    const thresholdProblems = variantThresholdProblems(this.experiments, {
      high: config.AD_THRESHOLD_HIGH,
      medium: config.AD_THRESHOLD_MEDIUM,
    });
    if (thresholdProblems.length > 0) {
      throw new AppError('CONFIG_INVALID', `experiments ${config.EXPERIMENTS_PATH}: ${thresholdProblems.join('; ')}`);
    }
    this.producer = SerialProducer.idempotent(deps.kafka, (err) => {
      log.warn('exposure send failed; the next send uses a fresh producer', { error: String(err) });
    });
    this.exposures = new ExposurePublisher(this.producer, deps.serde, deps.topics.adDecisions, {
      lingerMs: config.API_EXPOSURE_LINGER_MS,
    });
    this.ownsClickHouse = config.DASHBOARDS_ENABLED && !deps.clickhouse;
    this.clickhouse = config.DASHBOARDS_ENABLED ? (deps.clickhouse ?? createClickHouse(config)) : null;
  }

  /** Loads the model, connects, and listens; resolves with the URL it serves on. */
  async start(): Promise<string> {
    const { config, log } = this.deps;
    if (config.API_KEYS.some((k) => k.reveal() === DEV_API_KEY)) {
      log.warn('API_KEYS holds the local development key: set your own keys anywhere but a development machine');
    }
    await this.models.start(config.MODEL_POLL_MS);
    if (!this.models.current)
      log.warn('no current model yet: only cached scores can be served', { dir: config.MODEL_DIR });
    await this.deps.serde.register(this.deps.topics.adDecisions);
    await this.producer.connect();
    this.server = await buildServer({
      reader: this.reader,
      catalog: this.catalog,
      experiments: this.experiments,
      exposures: this.exposures,
      registry: this.deps.metrics.registry,
      log,
      apiKeys: config.API_KEYS.map((k) => k.reveal()),
      rateLimitPerMinute: config.API_RATE_LIMIT_PER_MINUTE,
      batchMax: config.API_BATCH_MAX,
      adThresholds: { high: config.AD_THRESHOLD_HIGH, medium: config.AD_THRESHOLD_MEDIUM },
      readiness: () => this.readiness(),
      erase: (subject) => this.erase(subject),
      ...(this.deps.now ? { now: this.deps.now } : {}),
    });
    if (this.clickhouse) {
      // Its own plugin (routes, error handler, assets) so the prediction routes in server.ts stay as they are.
      await this.server.register(dashboards, {
        clickhouse: this.clickhouse,
        modelDir: config.MODEL_DIR,
        registry: this.deps.metrics.registry,
        log,
        refreshMs: config.DASHBOARDS_REFRESH_MS,
      });
    }
    await this.server.listen({ host: config.API_HOST, port: config.API_PORT });
    const address = this.server.server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  /** Ready when Redis answers and a model is loaded (a cached score alone would serve, an on-demand one would not). */
  async readiness(): Promise<{ ready: boolean; modelVersion: string | null; reasons: string[] }> {
    const reasons: string[] = [];
    try {
      await this.redis.ping();
    } catch (err) {
      reasons.push(`redis unreachable: ${String(err)}`);
    }
    const modelVersion = this.models.current?.version ?? null;
    if (!modelVersion) reasons.push(`no model loaded from ${this.deps.config.MODEL_DIR}`);
    return { ready: reasons.length === 0, modelVersion, reasons };
  }

  /** `POST /erasure`: the same erasure as `npm run erase`, on this API's clients. */
  async erase(subject: ErasureSubject): Promise<ErasureReport> {
    this.erasureClients ??= (async () => {
      const admin = this.deps.kafka.admin();
      await admin.connect();
      const clickhouse = this.clickhouse ?? createClickHouse(this.deps.config);
      return { admin, clickhouse, owned: this.clickhouse === null };
    })().catch((err: unknown) => {
      this.erasureClients = undefined;
      throw err;
    });
    const { admin, clickhouse } = await this.erasureClients;
    const { config, kafka, serde, topics, log } = this.deps;
    return erasePerson({ config, kafka, admin, serde, topics, redis: this.redis, clickhouse, log }, subject);
  }

  /** Stops taking requests, answers those in flight, records their exposures, then closes the clients. */
  async stop(): Promise<void> {
    await this.server?.close();
    const erasure = await this.erasureClients?.catch(() => undefined);
    if (erasure) {
      await erasure.admin.disconnect();
      if (erasure.owned) await erasure.clickhouse.close();
    }
    await this.exposures.close();
    await this.producer.disconnect();
    await this.models.stop();
    if (this.ownsClickHouse) await this.clickhouse?.close();
    this.redis.disconnect();
  }
}

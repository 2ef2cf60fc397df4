import { Cron } from 'croner';
import { z } from 'zod';
import { AppError } from './errors.js';

/** A value that must not be printed: logs and config dumps show `***`. */
export class Secret {
  constructor(private readonly value: string) {}
  reveal(): string {
    return this.value;
  }
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
}

/** The API key that works out of the box on a development machine (never in production: the API warns). */
export const DEV_API_KEY = 'patternos-local-development-api-key';

/**
 * The identity graph's personal-data key on a development machine (32 bytes as hex: "patternos-local-dev-identity-key").
 * Never in production: with NODE_ENV=production IDENTITY_PII_KEY must be set, and the resolver warns when it sees this.
 */
export const DEV_IDENTITY_PII_KEY = '7061747465726e6f732d6c6f63616c2d6465762d6964656e746974792d6b6579';

/** Whether croner reads `pattern` as a cron expression (parsing only: nothing is scheduled). */
function isCronPattern(pattern: string): boolean {
  try {
    new Cron(pattern, { paused: true, timezone: 'UTC' }).stop();
    return true;
  } catch {
    return false;
  }
}

const csv = (v: string) =>
  v
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);

/**
 * Every environment variable the project reads, with its default. Endpoints default to the local stack's loopback
 * ports (see `npm run stack`), chosen off the usual ports so they do not collide with a developer's own services.
 * README.md lists the same table.
 */
export const configSchema = z.object({
  KAFKA_BROKERS: z.string().default('127.0.0.1:19092').transform(csv),
  KAFKA_CLIENT_ID: z.string().min(1).default('patternos'),
  /** Replication factor used by `npm run topics -- apply`; 1 for the single-node local stack, 3 in production. */
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).max(7).default(1),
  /**
   * Partitions of every keyed topic (`npm run topics -- apply`): the unit of scale-out, since each partition's customers
   * are owned by one instance. Part of the topics' contract: raise it before first use (or migrate).
   */
  KAFKA_PARTITIONS: z.coerce.number().int().min(1).max(1_024).default(3),
  SCHEMA_REGISTRY_URL: z.url().default('http://127.0.0.1:18081/apis/ccompat/v7'),
  REDIS_URL: z.string().default('redis://127.0.0.1:16379'),
  CLICKHOUSE_URL: z.url().default('http://127.0.0.1:18123'),
  CLICKHOUSE_USER: z.string().default('default'),
  CLICKHOUSE_PASSWORD: z
    .string()
    .default('')
    .transform((v) => new Secret(v)),
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier')
    .default('patternos'),
  /** Prepended to every topic name; lets several deployments (or test runs) share one cluster. */
  TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/)
    .default(''),
  /** Salt of the email/phone SHA-256; every platform must use the same one or cross-platform matching fails. */
  IDENTITY_HASH_SALT: z
    .string()
    .min(8)
    .default('patternos-local-development-salt')
    .transform((v) => new Secret(v)),
  /**
   * Key of the personal data in the identity graph (processors/identity/pii-codec.ts): 32 bytes as 64 hex characters
   * or base64 (`openssl rand -hex 32`). Required when NODE_ENV=production; elsewhere the development key.
   */
  IDENTITY_PII_KEY: z
    .string()
    .trim()
    .regex(/^(?:[0-9a-fA-F]{64}|[A-Za-z0-9+/_-]{43}=?)$/, 'must be 32 bytes as 64 hex characters or base64')
    .default(DEV_IDENTITY_PII_KEY)
    .transform((v) => new Secret(v)),
  /** Events stamped later than now + this are rejected as clock errors. */
  EVENT_MAX_FUTURE_MS: z.coerce
    .number()
    .int()
    .min(0)
    .default(60 * 60 * 1000),
  /**
   * Warehouse sink: flush when this many rows are buffered... Every flush is an insert per table, and ClickHouse pays
   * per insert (a new part to write and merge away): at 5,000 events/s offered (`bench -- pipeline`) 5,000 rows filled
   * in under a second, and ClickHouse took 0.28 cores; with 50,000 the one-second bound below decides, and ~0.1.
   */
  SINK_MAX_ROWS: z.coerce.number().int().min(1).max(1_000_000).default(50_000),
  /** ...or when the oldest buffered row is this old. */
  SINK_MAX_WAIT_MS: z.coerce.number().int().min(10).max(600_000).default(1_000),
  /** Identity resolver: Fellegi–Sunter model (m/u per comparison level) from `npm run identity:train`. */
  IDENTITY_MODEL_PATH: z.string().default('processors/identity/model.json'),
  /** Link when the match probability reaches this; empty = the model's own threshold. */
  IDENTITY_MATCH_THRESHOLD: z.coerce.number().min(0).max(1).optional(),
  /**
   * Resolver rounds: the input partitions are merged into one sequence by event time (ordered-intake.ts) and resolved
   * up to this many records at a time (one link snapshot, one send, one commit of every partition). Live traffic makes
   * rounds of what is there; this bounds them while behind, where each round's waits (the scripts, the send with
   * acks=all, the snapshot) are paid once for all its records.
   */
  IDENTITY_ROUND_MAX_RECORDS: z.coerce.number().int().min(1).max(100_000).default(20_000),
  /**
   * Changed identities (new ones, or new details of known ones) registered and judged per graph script: a round with
   * more makes several, one after the other, so a round of new customers holds Redis no longer than this many do.
   */
  IDENTITY_SCRIPT_MAX_IDENTITIES: z.coerce.number().int().min(1).max(100_000).default(1_000),
  IDENTITY_PICTURE_MAX_IDENTITIES: z.coerce.number().int().min(0).default(200_000),
  /**
   * How long (ms) a caught-up input partition with nothing buffered holds a round back (Kafka Streams'
   * max.task.idle.ms). A partition with records still on the broker is always waited for, so replays and backlogs are
   * resolved in the records' own order whatever this is; above 0, a live stream is too, as long as no partition lags
   * the others by more than this, at that much latency.
   */
  IDENTITY_ORDER_IDLE_MS: z.coerce.number().int().min(0).max(600_000).default(0),
  /**
   * How long (ms) a resolver fetch waits on the broker when its partitions have no records (kafkajs' maxWaitTimeInMs,
   * whose default is 5,000). A partition resumed after backpressure joins only the next fetch, and a round waits for
   * it: with 5,000, a burst held whole rounds for up to 5 s whenever the other partitions were idle.
   */
  IDENTITY_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(10).max(10_000).default(100),
  /** A merge that would make a cluster larger than this many platform identities is refused (and counted). */
  IDENTITY_MAX_CLUSTER_SIZE: z.coerce.number().int().min(2).max(100_000).default(100),
  /** Blocking sets larger than this are skipped as candidate sources (too common to be evidence; counted). */
  IDENTITY_MAX_BLOCK_SIZE: z.coerce.number().int().min(1).max(100_000).default(500),
  /**
   * Feature processor: an event older than the newest event of its own input stream (transactions or clicks of the id
   * it was published under) minus this is late: counted in features_events_total{outcome="late"} and not applied (it still reaches the warehouse).
   * Within it, events apply exactly in any order. Replays and backfills need more than the event-time skew between
   * source partitions.
   */
  FEATURES_LATE_GRACE_MS: z.coerce
    .number()
    .int()
    .min(0)
    .default(3 * 24 * 60 * 60 * 1000),
  /** Lifetime of a customer's feature state after its last update (s): it holds first-purchase and lifetime totals. */
  FEATURES_STATE_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(400 * 24 * 60 * 60),
  /** Lifetime of the ad server's feature hash after its last update (s). */
  FEATURES_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(90 * 24 * 60 * 60),
  /** Customers the feature processor keeps in memory across its partitions; beyond it, clean ones reload from Redis. */
  FEATURES_CACHE_SIZE: z.coerce.number().int().min(0).max(10_000_000).default(200_000),
  /**
   * Feature processor: a flush (state, features hash and score of every changed customer in one Redis round trip, the
   * scores in one Kafka batch, then the offset commit) starts as soon as the previous one is done and work is waiting,
   * and at least this often, while the processor is caught up (see FEATURES_FLUSH_MAX_RECORDS for when it is behind).
   */
  FEATURES_FLUSH_MAX_MS: z.coerce.number().int().min(1).max(60_000).default(100),
  /**
   * Feature processor, while behind (a quarter of FEATURES_FLUSH_MAX_RECORDS or more waiting in Kafka): a flush waits
   * for FEATURES_FLUSH_MAX_RECORDS folded records, or this long since the first of them.
   */
  FEATURES_FLUSH_BEHIND_MAX_MS: z.coerce.number().int().min(1).max(600_000).default(5_000),
  /**
   * Feature processor: how often each changed customer's state is checkpointed to Redis and the input offsets are
   * committed (served features and scores are written every flush). A crash repeats at most this much input. Sooner
   * when the states changed since the last one reach half of FEATURES_CACHE_SIZE (they cannot be evicted before).
   * Kafka Streams commits every 30 s by default; 10 s against 5 s took ~10 % off a backlog's CPU (`bench -- features`).
   */
  FEATURES_CHECKPOINT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  /**
   * Feature processor: records per flush while behind (coalescing: a customer with many of them is written and scored
   * once); twice this folded ahead of the last flush makes consumption wait for it. High enough that behind, the time
   * bound (FEATURES_FLUSH_BEHIND_MAX_MS) decides: with 50,000, flushes on uniform traffic over 50,000 customers wrote
   * ~0.52 customers per event (`bench -- features`, 12,800 events/s); with this, ~0.23 and ~24,000 events/s.
   */
  FEATURES_FLUSH_MAX_RECORDS: z.coerce.number().int().min(1).max(1_000_000).default(200_000),
  /** Feature snapshots into feat_customer_rfm every this many days of event time; 0 turns them off. */
  FEATURES_SNAPSHOT_PERIOD_DAYS: z.coerce.number().int().min(0).max(366).default(1),
  /** How often the feature processor re-reads the RFM cut points from Redis. */
  FEATURES_CUTPOINTS_REFRESH_MS: z.coerce.number().int().min(1_000).default(60_000),
  /** Model registry directory written by training/: `<MODEL_DIR>/<version>/`, and `current` naming the served one. */
  MODEL_DIR: z.string().default('models'),
  /** How often the scorer re-reads `<MODEL_DIR>/current` (a promoted model is picked up without a restart). */
  MODEL_POLL_MS: z.coerce.number().int().min(100).default(5_000),
  /** Lifetime of the ad server's score hash `score:{id}` after its last write (the seed's 6 hours). */
  SCORES_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(6 * 60 * 60),
  /** A customer whose last score is older than this (by the scorer's clock) is rescored without new events. */
  SCORING_RESCORE_EVERY_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .default(60 * 60 * 1000),
  /** The scorer's clock: `event` (newest event time seen; replays) or `wall` (also the wall clock; live). */
  SCORING_CLOCK: z.enum(['event', 'wall']).default('wall'),
  /** Consumer session timeout: how long a crashed instance keeps its partitions before the group reassigns them. */
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).max(300_000).default(30_000),
  /** Partitions a processor instance works on at once (each stays in offset order). */
  PROCESSOR_PARTITION_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  /**
   * How long a processor rides out a dependency outage (Redis, Kafka or ClickHouse down or restarting) before it gives
   * up and exits non-zero with the reason.
   */
  PROCESSOR_OUTAGE_MAX_MS: z.coerce.number().int().min(1_000).default(300_000),
  /**
   * How long a processor (resolver, feature processor, sink) lets a partition go without a delivered record while the
   * broker holds records past what it has (and no batch is being handled) before it calls its consumer stalled and
   * exits non-zero (runtime/fetch-watch.ts).
   */
  PROCESSOR_FETCH_STALL_MS: z.coerce.number().int().min(1_000).default(120_000),
  /**
   * How long one step of a processor's work (its start, a fetched batch handled, a resolver round, a flush) may run
   * before the processor calls itself stuck and exits non-zero (runtime/fetch-watch.ts, liveness.ts startOrExit): a
   * dependency that took a request and never answers is bounded by no client timeout. Above PROCESSOR_OUTAGE_MAX_MS,
   * which outages are ridden out for.
   */
  PROCESSOR_STEP_MAX_MS: z.coerce.number().int().min(1_000).default(600_000),
  /** Port of a processor's Prometheus /metrics on 127.0.0.1; unset: its default (runtime/metrics.ts); 0: off. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65_535).optional(),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** How often `npm run start:monitor` re-runs the online model monitoring job and refreshes its gauges. */
  MONITOR_EVERY_MS: z.coerce
    .number()
    .int()
    .min(10_000)
    .default(60 * 60 * 1000),
  /** Prometheus, whose firing alerts (GET /api/v1/alerts) the retrainer polls for ModelAucLow. */
  PROMETHEUS_URL: z.url().default('http://127.0.0.1:19090'),
  /** When `npm run start:retrainer` retrains by itself: a cron expression in UTC (minute hour day month weekday), or `off`. */
  RETRAIN_SCHEDULE: z
    .string()
    .trim()
    .default('0 3 * * 1')
    .refine((v) => v === 'off' || isCronPattern(v), 'must be a cron expression such as "0 3 * * 1", or "off"'),
  /** How often the retrainer asks Prometheus whether the model-AUC alert fires (0: never; the webhook still works). */
  RETRAIN_ALERT_POLL_MS: z.coerce.number().int().min(0).default(60_000),
  /** After a run started by the alert, the same alert does not start another for this long (it keeps firing). */
  RETRAIN_ALERT_COOLDOWN_MS: z.coerce
    .number()
    .int()
    .min(0)
    .default(24 * 60 * 60 * 1000),
  /** A retraining still running after this is stopped (its whole process group) and counted as failed. */
  RETRAIN_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .default(4 * 60 * 60 * 1000),
  /** Months of reference dates a retraining trains on, ending at the warehouse's newest fully labelled day. */
  RETRAIN_MONTHS: z.coerce.number().int().min(1).max(120).default(6),
  /** Days between the reference dates of a retraining's training set. */
  RETRAIN_STEP_DAYS: z.coerce.number().int().min(1).max(90).default(1),
  /**
   * ROC-AUC margin by which a retrained model must beat its run's logistic-regression baseline to be promoted
   * (`npm run train -- --min-improvement-over-logistic`); negative relaxes the rule, −1 turns it off.
   */
  RETRAIN_MIN_IMPROVEMENT_OVER_LOGISTIC: z.coerce.number().min(-1).max(1).default(0),
  /** Prediction API (`npm run start:api`): bind address; loopback unless the operator opens it. */
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(0).max(65_535).default(18_080),
  /**
   * Bearer tokens the API accepts, comma-separated (at least 16 characters each). The default is a local development
   * key the API warns about at startup; set your own everywhere else.
   */
  API_KEYS: z
    .string()
    .default(DEV_API_KEY)
    .transform(csv)
    .pipe(z.array(z.string().min(16, 'API keys need at least 16 characters')).min(1, 'at least one API key'))
    .transform((keys) => keys.map((k) => new Secret(k))),
  /** Requests per minute each API key may make; beyond it the API answers 429. */
  API_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(120_000),
  /** Customers one POST /predict-intent/batch may name. */
  API_BATCH_MAX: z.coerce.number().int().min(1).max(10_000).default(500),
  /**
   * How long the API waits for one Redis command before the request answers 503: a Redis that takes commands and never
   * answers would otherwise hold every request (and the ad server's connections) for as long as the client waits.
   */
  API_REDIS_TIMEOUT_MS: z.coerce.number().int().min(10).default(1_000),
  /** The creative catalog of POST /ad-decision (JSON; see processors/api/creatives.ts). */
  API_CREATIVES_PATH: z.string().min(1).default('processors/api/creatives.sample.json'),
  /** A/B experiments (JSON; see processors/experiments/definitions.ts): the API enrols ad decisions in the running one. */
  EXPERIMENTS_PATH: z.string().min(1).default('processors/experiments/experiments.json'),
  /** Ad decisions: score >= this → product ad for the predicted category... */
  AD_THRESHOLD_HIGH: z.coerce.number().min(0).max(1).default(0.7),
  /** ...score >= this → category ad; below → brand ad. */
  AD_THRESHOLD_MEDIUM: z.coerce.number().min(0).max(1).default(0.4),
  /**
   * Exposures: decisions wait at most this long to share one Kafka send (group commit); a decision is answered only
   * once its exposure record is acknowledged.
   */
  API_EXPOSURE_LINGER_MS: z.coerce.number().int().min(0).max(1_000).default(2),
  /**
   * The dashboards the API serves under /dashboards (aggregates only, no API key; processors/dashboards/plugin.ts).
   * `false` turns them off where the API port is reachable by more than operators.
   */
  DASHBOARDS_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  /** How often an open dashboard page refetches its data. */
  DASHBOARDS_REFRESH_MS: z.coerce.number().int().min(1_000).default(30_000),
});

export type Config = Readonly<z.infer<typeof configSchema>>;

/** Parses the environment once; reports every problem together so a bad deploy fails in one round trip. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const parsed = configSchema.safeParse(env);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  // A production deployment must never seal people's data with the key published in this repository.
  if (env['NODE_ENV'] === 'production' && !env['IDENTITY_PII_KEY']?.trim()) {
    problems.push('IDENTITY_PII_KEY: required when NODE_ENV=production (32 bytes, e.g. `openssl rand -hex 32`)');
  }
  if (parsed.success && parsed.data.PROCESSOR_STEP_MAX_MS <= parsed.data.PROCESSOR_OUTAGE_MAX_MS) {
    problems.push(
      `PROCESSOR_STEP_MAX_MS: must exceed PROCESSOR_OUTAGE_MAX_MS (${parsed.data.PROCESSOR_OUTAGE_MAX_MS}), or a ` +
        'step riding out an outage would be called stuck before the outage rule gives its reason',
    );
  }
  if (!parsed.success || problems.length > 0) {
    throw new AppError('CONFIG_INVALID', problems.join('; '));
  }
  return Object.freeze(parsed.data);
}

/**
 * Which failures mean "a dependency is down or restarting" (Redis, Kafka, ClickHouse, the schema registry) rather than
 * "this work is broken". A processor rides out the first kind for a bounded time (`PROCESSOR_OUTAGE_MAX_MS`, 5 min by
 * default: a restart, a failover) and gives up sooner on the second, whose repetitions only repeat the failure.
 */
import { AppError } from './errors.js';

export type Dependency = 'redis' | 'kafka' | 'clickhouse' | 'unknown';

/** ioredis errors a down or restarting server produces (no connection, queue flushed, replaying its append-only file). */
const REDIS_NAMES: ReadonlySet<string> = new Set(['MaxRetriesPerRequestError']);
const REDIS_MESSAGE =
  /Connection is closed|Stream isn't writeable|enableOfflineQueue|^LOADING |^READONLY |^MASTERDOWN |^TRYAGAIN /;

/** kafkajs errors of an unreachable or restarting broker (retries given up are judged by their cause). */
const KAFKA_NAMES: ReadonlySet<string> = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSLockTimeout',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSGroupCoordinatorNotFound',
]);

/** Protocol errors a broker answers while it starts, moves leaders or loads a group. */
const KAFKA_TYPES: ReadonlySet<string> = new Set([
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'GROUP_LOAD_IN_PROGRESS',
  'NOT_COORDINATOR',
  'NOT_COORDINATOR_FOR_GROUP',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'REQUEST_TIMED_OUT',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'NETWORK_EXCEPTION',
  'KAFKA_STORAGE_ERROR',
  'UNKNOWN_TOPIC_OR_PARTITION',
]);

const SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

function* causes(err: unknown): Generator {
  const seen = new Set<unknown>();
  for (let e = err; e !== undefined && e !== null && !seen.has(e) && seen.size < 10;) {
    seen.add(e);
    yield e;
    e = e instanceof Error ? e.cause : undefined;
  }
}

/**
 * The dependency whose outage `err` shows (looking through `cause` chains), or undefined when it is no outage: a
 * bug, bad data, a refused request. A socket error of unknown origin counts as an outage of an `unknown` dependency.
 */
export function outageOf(err: unknown): Dependency | undefined {
  let socket = false;
  for (const e of causes(err)) {
    if (!(e instanceof Error)) continue;
    if (REDIS_NAMES.has(e.name) || REDIS_MESSAGE.test(e.message)) return 'redis';
    if (KAFKA_NAMES.has(e.name)) return 'kafka';
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && KAFKA_TYPES.has(type)) return 'kafka';
    if (e instanceof AppError && e.code === 'DEPENDENCY_UNAVAILABLE')
      return /clickhouse/i.test(e.message) ? 'clickhouse' : 'unknown';
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SOCKET_CODES.has(code)) socket = true;
  }
  return socket ? 'unknown' : undefined;
}

/** Group errors after which kafkajs' runner joins the group again, when they reach it with their protocol type. */
const MEMBERSHIP_ERRORS: ReadonlySet<string> = new Set([
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'REBALANCE_IN_PROGRESS',
  'NOT_COORDINATOR_FOR_GROUP',
]);

/**
 * The protocol error behind `err` (following `cause`) when it says this member lost its place in the group (a broker
 * restart, a rebalance, a batch longer than the session timeout): no failure of the work, the member joins again.
 */
export function membershipError(err: unknown): Error | undefined {
  for (const e of causes(err)) {
    const type = e instanceof Error ? (e as { type?: unknown }).type : undefined;
    if (typeof type === 'string' && MEMBERSHIP_ERRORS.has(type)) return e as Error;
  }
  return undefined;
}

/** What `reportRedisConnection` needs of an ioredis client (its connection events). */
interface RedisEvents {
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
}

/**
 * Logs a processor's Redis connection going away once (ioredis retries it every few seconds and would otherwise print
 * "Unhandled error event" on every attempt) and coming back. Commands wait meanwhile and fail per the client's
 * `maxRetriesPerRequest`; the processor's retries decide how long that is ridden out.
 */
export function reportRedisConnection(
  redis: RedisEvents,
  log: {
    warn: (msg: string, fields?: Record<string, unknown>) => void;
    info: (msg: string, fields?: Record<string, unknown>) => void;
  },
): void {
  let down = false;
  redis.on('error', (err) => {
    if (down) return;
    down = true;
    log.warn('redis connection lost; reconnecting', { error: err.message });
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    log.info('redis connection back');
  });
}

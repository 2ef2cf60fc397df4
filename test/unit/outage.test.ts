import { EventEmitter } from 'node:events';
import { MaxRetriesPerRequestError } from 'ioredis/built/errors/index.js';
import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../processors/runtime/errors.js';
import { membershipError, outageOf, reportRedisConnection } from '../../processors/runtime/outage.js';

const protocol = (type: string, retriable: boolean) =>
  new KafkaJSProtocolError({ message: type.toLowerCase(), type, code: 0, retriable } as never);

describe('outageOf', () => {
  it('names the dependency of errors a down or restarting service produces', () => {
    expect(outageOf(new MaxRetriesPerRequestError(3) as unknown)).toBe('redis');
    expect(outageOf(new Error('Connection is closed.'))).toBe('redis');
    expect(outageOf(new Error('LOADING Redis is loading the dataset in memory'))).toBe('redis');
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:19092', {
      code: 'ECONNREFUSED',
    });
    expect(outageOf(refused)).toBe('kafka');
    expect(
      outageOf(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 300, cause: refused } as never)),
    ).toBe('kafka');
    expect(outageOf(protocol('COORDINATOR_LOAD_IN_PROGRESS', true))).toBe('kafka');
    expect(outageOf(protocol('LEADER_NOT_AVAILABLE', true))).toBe('kafka');
    const clickhouse = new AppError('DEPENDENCY_UNAVAILABLE', 'ClickHouse write to fact_event kept failing');
    expect(outageOf(clickhouse)).toBe('clickhouse');
    expect(outageOf(new Error('flush failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe(
      'unknown',
    );
  });

  it('is undefined for failures that repeat identically: bugs, bad data, refused requests', () => {
    expect(outageOf(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBeUndefined();
    expect(outageOf(new Error('ERR Error running script: attempt to compare nil with number'))).toBeUndefined();
    expect(outageOf(protocol('MESSAGE_TOO_LARGE', false))).toBeUndefined();
    expect(outageOf(new AppError('RECORD_INVALID', 'negative quantity'))).toBeUndefined();
    expect(outageOf('a string')).toBeUndefined();
  });
});

describe('membershipError', () => {
  it('finds UNKNOWN_MEMBER_ID even where kafkajs wrapped it without its type', () => {
    const unknown = protocol('UNKNOWN_MEMBER_ID', false);
    // kafkajs' retrier wraps it so: new KafkaJSNonRetriableError(e, { cause: e }) (the typings omit the option).
    const Wrapper = KafkaJSNonRetriableError as unknown as new (e: Error, options: { cause: Error }) => Error;
    const wrapped = new Wrapper(unknown, { cause: unknown });
    expect((wrapped as unknown as { type?: string }).type).toBeUndefined();
    expect(membershipError(wrapped)).toBe(unknown);
    expect(membershipError(protocol('REBALANCE_IN_PROGRESS', true))?.message).toBe('rebalance_in_progress');
    expect(membershipError(protocol('COORDINATOR_NOT_AVAILABLE', true))).toBeUndefined();
    expect(membershipError(new Error('no'))).toBeUndefined();
  });
});

describe('reportRedisConnection', () => {
  it('says once that the connection went away, however many reconnection attempts fail, and once that it is back', () => {
    const redis = new EventEmitter();
    const lines: string[] = [];
    reportRedisConnection(redis, {
      warn: (msg) => lines.push(msg),
      info: (msg) => lines.push(msg),
    });
    for (let i = 0; i < 5; i++) redis.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:16379'));
    redis.emit('ready');
    redis.emit('ready');
    redis.emit('error', new Error('read ECONNRESET'));
    expect(lines).toEqual([
      'redis connection lost; reconnecting',
      'redis connection back',
      'redis connection lost; reconnecting',
    ]);
  });
});

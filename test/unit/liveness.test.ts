import { EventEmitter } from 'node:events';
import { KafkaJSConnectionError, KafkaJSProtocolError, type Consumer, type EachBatchPayload } from 'kafkajs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  exitOnFatal,
  ProcessorStalledError,
  startOrExit,
  superviseConsumer,
  type FatalFailure,
} from '../../processors/runtime/liveness.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { FetchWatch, type StallKind } from '../../processors/runtime/fetch-watch.js';
import { createLogger } from '../../processors/runtime/log.js';

const failure: FatalFailure = { kind: 'crash', reason: 'test', error: new Error('test') };
const log = createLogger('error', { test: 'liveness' });
const silent = { ...log, error: () => undefined };

describe('exitOnFatal', () => {
  it('exits with 1 once the shutdown is done, and runs it once for repeated reports', async () => {
    const codes: number[] = [];
    let closes = 0;
    const onFatal = exitOnFatal(
      silent,
      () => {
        closes++;
        return Promise.resolve();
      },
      {
        exit: (code) => {
          codes.push(code);
        },
      },
    );
    onFatal(failure);
    onFatal(failure);
    await new Promise((r) => setTimeout(r, 10));
    expect(codes).toEqual([1]);
    expect(closes).toBe(1);
  });

  it('exits with 1 when the shutdown fails or hangs past its bound', async () => {
    const codes: number[] = [];
    exitOnFatal(silent, () => Promise.reject(new Error('broker gone')), { exit: (c) => void codes.push(c) })(failure);
    exitOnFatal(silent, () => new Promise(() => undefined), { timeoutMs: 50, exit: (c) => void codes.push(c) })(
      failure,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(codes).toEqual([1, 1]);
  });
});

/** The part of a kafkajs consumer the supervisor uses: its instrumentation events (no Kafka behaviour). */
function consumerEvents() {
  const emitter = new EventEmitter();
  const events = { CRASH: 'consumer.crash', GROUP_JOIN: 'consumer.group_join' };
  const consumer = {
    events,
    on: (name: string, listener: (e: unknown) => void) => {
      emitter.on(name, listener);
      return () => emitter.off(name, listener);
    },
  };
  return { consumer: consumer as unknown as Consumer, emit: (name: string, e: unknown) => emitter.emit(name, e) };
}

function batchPayload(offset = '7'): EachBatchPayload {
  return {
    batch: {
      topic: 't',
      partition: 0,
      firstOffset: () => offset,
      messages: [{ offset }],
      offsetLag: () => '0',
    },
  } as unknown as EachBatchPayload;
}

describe('superviseConsumer and dependency outages', () => {
  const setup = (maxOutageMs = 60_000) => {
    let nowMs = 0;
    const failures: FatalFailure[] = [];
    const registry = new Registry();
    const { consumer, emit } = consumerEvents();
    const supervisor = superviseConsumer(consumer, {
      processor: 'p',
      log: { ...log, warn: () => undefined, info: () => undefined, error: () => undefined },
      registry,
      maxOutageMs,
      onFatal: (f) => failures.push(f),
      now: () => nowMs,
    });
    return { supervisor, failures, registry, emit, advance: (ms: number) => (nowMs += ms) };
  };
  const redisDown = () => {
    // What ioredis rejects a command with when Redis stays unreachable through its reconnection attempts.
    const error = Object.assign(new Error('Reached the max retries per request limit (which is 3).'), {
      name: 'MaxRetriesPerRequestError',
    });
    return Promise.reject(error);
  };

  it('rides out an outage for maxOutageMs, however many attempts, and shows it in a gauge', async () => {
    const { supervisor, failures, registry, advance } = setup();
    const failing = supervisor.eachBatch(redisDown);
    for (let i = 0; i < 20; i++) {
      await expect(failing(batchPayload())).rejects.toThrow(/max retries/);
      advance(2_000);
    }
    expect(failures).toEqual([]);
    const gauge = await registry.getSingleMetric('processor_dependency_outage_seconds')?.get();
    expect(gauge?.values).toContainEqual(expect.objectContaining({ labels: { processor: 'p', dependency: 'redis' } }));
    expect(gauge?.values[0]?.value).toBeGreaterThanOrEqual(38);
    // Back: the batch finishes and the gauge drops to 0.
    await supervisor.eachBatch(() => Promise.resolve())(batchPayload());
    expect((await registry.getSingleMetric('processor_dependency_outage_seconds')?.get())?.values[0]?.value).toBe(0);
  });

  it('gives up once the outage outlasts maxOutageMs: fatal, counted, the batch stopped for good', async () => {
    const { supervisor, failures, registry, advance } = setup(30_000);
    const failing = supervisor.eachBatch(redisDown);
    await expect(failing(batchPayload())).rejects.toThrow(/max retries/);
    advance(31_000);
    await expect(failing(batchPayload())).rejects.toThrow(ProcessorStalledError);
    expect(failures).toHaveLength(1);
    expect(failures[0]?.kind).toBe('dependency-outage');
    expect(failures[0]?.reason).toMatch(/^redis unavailable for 31 s/);
    const fatal = await registry.getSingleMetric('processor_fatal_total')?.get();
    expect(fatal?.values).toEqual([
      expect.objectContaining({ labels: { processor: 'p', kind: 'dependency-outage' }, value: 1 }),
    ]);
  });

  it('does not count a member dropped from its group as a failure of the batch', async () => {
    const { supervisor, failures, advance } = setup();
    const unknownMember = new KafkaJSProtocolError({
      message: 'The coordinator is not aware of this member',
      type: 'UNKNOWN_MEMBER_ID',
      code: 25,
      retriable: false,
    } as never);
    const dropped = supervisor.eachBatch(() => Promise.reject(unknownMember));
    for (let i = 0; i < 10; i++) {
      await expect(dropped(batchPayload())).rejects.toBe(unknownMember);
      advance(60_000);
    }
    expect(failures).toEqual([]);
  });

  it('keeps the short bound for failures that are no outage', async () => {
    const { supervisor, failures, advance } = setup();
    const broken = supervisor.eachBatch(() => Promise.reject(new TypeError('bug')));
    for (let i = 0; i < 4; i++) {
      await expect(broken(batchPayload())).rejects.toThrow('bug');
      advance(10_000);
    }
    await expect(broken(batchPayload())).rejects.toThrow(ProcessorStalledError);
    expect(failures[0]?.kind).toBe('stalled-batch');
  });

  it('lets kafkajs restart a consumer through a broker outage, and gives up after maxOutageMs of restarts', () => {
    const { failures, emit, advance } = setup(60_000);
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED', {
      code: 'ECONNREFUSED',
    });
    for (let i = 0; i < 10; i++) {
      emit('consumer.crash', { payload: { error: refused, restart: true } });
      advance(5_000);
    }
    expect(failures).toEqual([]);
    emit('consumer.group_join', { payload: {} });
    for (let i = 0; i < 13; i++) {
      emit('consumer.crash', { payload: { error: refused, restart: true } });
      advance(5_000);
    }
    expect(failures).toHaveLength(1);
    expect(failures[0]?.kind).toBe('dependency-outage');
    expect(failures[0]?.reason).toMatch(/^kafka unavailable for 60 s/);
  });
});

describe('FetchWatch steps', () => {
  /** A watch following a consumer that never joins a group: only the steps can be found stuck (no admin is asked). */
  const watching = (stepMaxMs: number) => {
    const stalls: { reason: string; kind: StallKind }[] = [];
    const unasked = {} as never; // the fetch check needs assigned partitions, and there are none
    const watch = new FetchWatch({
      admin: unasked,
      groupId: 'g',
      stallMs: 60_000,
      stepMaxMs,
      log: silent,
      onStall: (reason, kind) => stalls.push({ reason, kind }),
    });
    watch.follow(consumerEvents().consumer);
    return { watch, stalls };
  };

  it('reports a step that never ends, once, naming it and its age', async () => {
    const { watch, stalls } = watching(1_000);
    try {
      void watch.step('a flush', () => new Promise(() => undefined));
      void watch.handle(() => new Promise(() => undefined));
      await new Promise((r) => setTimeout(r, 3_300));
      expect(stalls).toHaveLength(1);
      expect(stalls[0]?.kind).toBe('step');
      expect(stalls[0]?.reason).toMatch(/^a flush has run for [1-3] s without ending \(PROCESSOR_STEP_MAX_MS 1 s\)/);
    } finally {
      watch.stop();
    }
  });

  it('lets steps that end within the bound be, however many run one after the other', async () => {
    const { watch, stalls } = watching(1_000);
    try {
      for (let i = 0; i < 12; i++) {
        await watch.step('a round', () => new Promise((r) => setTimeout(r, 200)));
        await watch.handle(() => Promise.resolve());
      }
      await expect(watch.step('a failing round', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
      await new Promise((r) => setTimeout(r, 1_500));
      expect(stalls).toEqual([]);
    } finally {
      watch.stop();
    }
  });
});

describe('PROCESSOR_STEP_MAX_MS', () => {
  it('must exceed PROCESSOR_OUTAGE_MAX_MS, so an outage ridden out keeps its own rule and reason', () => {
    expect(loadConfig({}).PROCESSOR_STEP_MAX_MS).toBe(600_000);
    expect(() => loadConfig({ PROCESSOR_STEP_MAX_MS: '300000' })).toThrow(/PROCESSOR_STEP_MAX_MS: must exceed/);
    expect(loadConfig({ PROCESSOR_STEP_MAX_MS: '3000', PROCESSOR_OUTAGE_MAX_MS: '1000' }).PROCESSOR_STEP_MAX_MS).toBe(
      3_000,
    );
  });
});

describe('startOrExit', () => {
  it('exits 1, saying why, when the start does not end within its bound, and passes a start that does', async () => {
    const codes: number[] = [];
    const exit = (code: number) => void codes.push(code);
    await expect(startOrExit(silent, 50, () => new Promise(() => undefined), exit)).rejects.toThrow(
      /^the start has run for 0 s without ending \(PROCESSOR_STEP_MAX_MS\)/,
    );
    expect(codes).toEqual([1]);
    await expect(
      startOrExit(silent, 50, () => Promise.reject(new Error('sealed with another key')), exit),
    ).rejects.toThrow('sealed with another key');
    expect(codes).toEqual([1, 1]);
    await expect(startOrExit(silent, 1_000, () => Promise.resolve('started'), exit)).resolves.toBe('started');
    expect(codes).toEqual([1, 1]);
  });
});

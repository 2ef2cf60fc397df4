/** Prometheus metrics shared by processors, and the /metrics endpoint (loopback by default). */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The counter `name` of `registry`, created on first use: modules that may be built several times on one registry
 * (publishers, consumer supervisors) share one series set instead of failing on a duplicate registration.
 */
export function sharedCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** The gauge `name` of `registry`, created on first use (see sharedCounter). */
export function sharedGauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) return existing;
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/**
 * Data freshness per input topic: `input_freshness_seconds{processor,topic}` is, at scrape time, now minus the newest
 * event time this process has read from the topic (the seed asks "now minus the newest event time"). A replay of old
 * data reads as old; a topic nobody writes to grows until an event arrives. `input_newest_event_time_seconds` is the
 * event time itself, for alerts that compare across processes.
 */
export class InputFreshness {
  private readonly newest: Map<string, { processor: string; topic: string; ms: number }>;

  constructor(
    registry: Registry,
    private readonly processor: string,
    nowMs: () => number = Date.now,
  ) {
    let newest = freshnessStores.get(registry);
    if (!newest) {
      const store = new Map<string, { processor: string; topic: string; ms: number }>();
      newest = store;
      freshnessStores.set(registry, store);
      const labelNames = ['processor', 'topic'] as const;
      new Gauge({
        name: 'input_freshness_seconds',
        help: 'Now minus the newest event time read from each input topic',
        labelNames,
        registers: [registry],
        collect() {
          for (const { processor, topic, ms } of store.values()) this.set({ processor, topic }, (nowMs() - ms) / 1000);
        },
      });
      new Gauge({
        name: 'input_newest_event_time_seconds',
        help: 'The newest event time read from each input topic (unix seconds)',
        labelNames,
        registers: [registry],
        collect() {
          for (const { processor, topic, ms } of store.values()) this.set({ processor, topic }, ms / 1000);
        },
      });
    }
    this.newest = newest;
  }

  /** Notes the event times of records just read from `topic`. */
  observe(topic: string, eventTimesMs: Iterable<number>): void {
    const key = `${this.processor}\u0000${topic}`;
    let max = this.newest.get(key)?.ms ?? Number.NEGATIVE_INFINITY;
    for (const t of eventTimesMs) if (t > max) max = t;
    if (Number.isFinite(max)) this.newest.set(key, { processor: this.processor, topic, ms: max });
  }
}

/** Per registry, the newest event time per (processor, topic): one pair of gauges however many readers share it. */
const freshnessStores = new WeakMap<Registry, Map<string, { processor: string; topic: string; ms: number }>>();

export interface ProcessorMetrics {
  readonly registry: Registry;
  /** outcome: ok | dead_letter */
  readonly records: Counter<'processor' | 'topic' | 'outcome'>;
  readonly batchDuration: Histogram<'processor'>;
  readonly retries: Counter<'processor' | 'dependency'>;
  readonly sinkRows: Counter<'table'>;
  readonly sinkBufferedRows: Gauge<'processor'>;
  readonly sinkFlushDuration: Histogram<'processor'>;
}

/** A fresh registry per processor instance, so tests can run several in one process without clashes. */
export function createMetrics(defaults = false): ProcessorMetrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  return {
    registry,
    records: new Counter({
      name: 'processor_records_total',
      help: 'Records consumed, by outcome',
      labelNames: ['processor', 'topic', 'outcome'],
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'processor_batch_duration_seconds',
      help: 'Time to process one fetched batch',
      labelNames: ['processor'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'processor_dependency_retries_total',
      help: 'Retries of a failed call to a dependency (a transient outage)',
      labelNames: ['processor', 'dependency'],
      registers: [registry],
    }),
    sinkRows: new Counter({
      name: 'warehouse_rows_inserted_total',
      help: 'Rows inserted into ClickHouse',
      labelNames: ['table'],
      registers: [registry],
    }),
    sinkBufferedRows: new Gauge({
      name: 'warehouse_buffered_rows',
      help: 'Rows waiting for the next insert',
      labelNames: ['processor'],
      registers: [registry],
    }),
    sinkFlushDuration: new Histogram({
      name: 'warehouse_flush_duration_seconds',
      help: 'Time to insert one buffered batch, retries included',
      labelNames: ['processor'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    }),
  };
}

/** Serves GET /metrics on 127.0.0.1:port (0 = a free port). Resolves with the server once it listens. */
export async function serveMetrics(registry: Registry, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType }).end(body);
      },
      (err: unknown) => {
        res.writeHead(500).end(String(err));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject); // e.g. EADDRINUSE: the caller decides what a missing endpoint means
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/**
 * Where each entrypoint serves /metrics when METRICS_PORT is not set: fixed loopback ports, so the local stack's
 * Prometheus (and an operator's) knows where to scrape. The prediction API serves /metrics on its own port.
 */
export const DEFAULT_METRICS_PORTS = {
  'identity-resolver': 18091,
  'feature-processor': 18092,
  'warehouse-sink': 18093,
  monitor: 18094,
  retrainer: 18095,
} as const;

/**
 * Serves an entrypoint's /metrics on METRICS_PORT, else its default port; 0 turns it off. A port already taken (a
 * second instance on one host) is reported and the processor runs on without it: metrics are not worth a stopped stream.
 */
export async function serveProcessorMetrics(
  registry: Registry,
  processor: keyof typeof DEFAULT_METRICS_PORTS,
  configured: number | undefined,
  log: { warn: (msg: string, fields?: Record<string, unknown>) => void },
): Promise<Server | undefined> {
  const port = configured ?? DEFAULT_METRICS_PORTS[processor];
  if (port === 0) return undefined;
  try {
    return await serveMetrics(registry, port);
  } catch (err) {
    log.warn('metrics endpoint not served: set METRICS_PORT to a free port (0: off)', { port, error: String(err) });
    return undefined;
  }
}

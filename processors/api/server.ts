/**
 * The prediction API's routes (fastify): request and response schemas (validated, serialized, and published as the
 * OpenAPI document at /openapi.json), bearer-key authentication and a per-key rate limit on the data routes, and
 * /health, /ready, /metrics without a key for orchestrators and Prometheus.
 *
 * Errors always answer `{ error, message }`: 400 bad_request (the reason the body was refused), 401 unauthorized,
 * 404 not_found, 413 payload_too_large (body over 1 MiB), 415 unsupported_media_type (neither JSON nor text), 429 rate_limited,
 * 503 unavailable (Redis, Kafka or the model), 500 internal.
 */
import { createHash, randomUUID } from 'node:crypto';
import bearerAuth from '@fastify/bearer-auth';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import { Type, type Static, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AdDecision } from '../../schemas/generated/types.js';
import type { Experiment } from '../experiments/definitions.js';
import { enrol } from '../experiments/logic.js';
import type { Logger } from '../runtime/log.js';
import { decideAd, describeRef, type AdThresholds, type CustomerRef } from './logic.js';
import type { CreativeCatalog } from './creatives.js';
import type { ExposurePublisher } from './exposures.js';
import type { ErasureReport } from '../erasure/erase.js';
import type { ErasureSubject } from '../erasure/logic.js';
import type { CustomerReader, PredictOutcome } from './reader.js';

export interface ServerDeps {
  readonly reader: CustomerReader;
  readonly catalog: CreativeCatalog;
  /** A/B experiments: an ad decision is enrolled in the running ad experiment and uses its variant's thresholds. */
  readonly experiments: readonly Experiment[];
  readonly exposures: ExposurePublisher;
  readonly registry: Registry;
  readonly log: Logger;
  /** Accepted bearer tokens (revealed secrets: never logged). */
  readonly apiKeys: readonly string[];
  readonly rateLimitPerMinute: number;
  readonly batchMax: number;
  readonly adThresholds: AdThresholds;
  /** Redis reachable and a model loaded; reasons when not. */
  readonly readiness: () => Promise<{ ready: boolean; modelVersion: string | null; reasons: string[] }>;
  /** Erases one person everywhere (processors/erasure/erase.ts); without it POST /erasure is not served. */
  readonly erase?: (subject: ErasureSubject) => Promise<ErasureReport>;
  readonly now?: () => number;
}

const ErasureBody = Type.Object({
  erasure_id: Type.String({ description: 'The erasure_log row of this request' }),
  status: Type.Union([Type.Literal('done'), Type.Literal('not_found'), Type.Literal('pending')], {
    description: 'pending: a processor or warehouse mutation has not finished yet (see pending); repeat the request',
  }),
  counts: Type.Object({
    found: Type.Boolean(),
    global_ids: Type.Integer(),
    identities: Type.Integer(),
    graph_index_entries: Type.Integer(),
    redis_keys: Type.Integer(),
    tombstones: Type.Integer(),
    commands: Type.Integer(),
    warehouse_rows: Type.Record(Type.String(), Type.Integer(), { description: 'Rows deleted, by table' }),
  }),
  pending: Type.Array(Type.String()),
});

/** A request body that names one customer; which form it uses is checked in the handler (clearer than anyOf). */
const RefBody = {
  customer_id: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Global customer id' })),
  platform: Type.Optional(
    Type.String({ minLength: 1, maxLength: 64, pattern: '^[^:]+$', description: 'Platform id, with…' }),
  ),
  platform_customer_id: Type.Optional(
    Type.String({ minLength: 1, maxLength: 256, description: "…the platform's own customer id" }),
  ),
};
const PredictBody = Type.Object(RefBody, { additionalProperties: false });
type PredictBody = Static<typeof PredictBody>;

const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() });

const Prediction = Type.Object({
  customer_id: Type.String({ description: 'The global customer id answered for (a merged-away id: its survivor)' }),
  intent_score: Type.Number(),
  intent_level: Type.Union([Type.Literal('LOW'), Type.Literal('MEDIUM'), Type.Literal('HIGH')]),
  purchase_probability_7d: Type.Number(),
  predicted_category: Type.Union([Type.String(), Type.Null()]),
  model_version: Type.String(),
  scored_at: Type.String({ format: 'date-time' }),
  feature_time: Type.String({ format: 'date-time', description: 'Event time of the newest event reflected' }),
  as_of: Type.String({ format: 'date-time', description: 'Reference time of the score' }),
  source: Type.Union([Type.Literal('cache'), Type.Literal('computed')]),
});

const BatchResult = Type.Union([
  Type.Object({ status: Type.Literal(200), prediction: Prediction }),
  Type.Object({
    status: Type.Union([Type.Literal(404), Type.Literal(503)]),
    error: Type.String(),
    message: Type.String(),
  }),
]);

const CreativeBody = Type.Object({
  id: Type.String(),
  type: Type.String(),
  category: Type.Union([Type.String(), Type.Null()]),
  title: Type.String(),
  url: Type.Union([Type.String(), Type.Null()]),
  product_id: Type.Union([Type.String(), Type.Null()]),
});

const DecisionBody = Type.Object({
  decision_id: Type.String({ format: 'uuid' }),
  customer_id: Type.String(),
  ad_type: Type.Union([Type.Literal('PRODUCT'), Type.Literal('CATEGORY'), Type.Literal('BRAND')]),
  creative: CreativeBody,
  placement: Type.Union([Type.String(), Type.Null()]),
  intent_score: Type.Number(),
  intent_level: Type.String(),
  predicted_category: Type.Union([Type.String(), Type.Null()]),
  model_version: Type.String(),
  score_source: Type.Union([Type.Literal('cache'), Type.Literal('computed')]),
  experiment: Type.Union([Type.String(), Type.Null()]),
  variant: Type.Union([Type.String(), Type.Null()]),
  decided_at: Type.String({ format: 'date-time' }),
});

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The one form of customer a body names, or a 400 saying what is wrong. */
function refOf(body: PredictBody): CustomerRef {
  const { customer_id, platform, platform_customer_id } = body;
  if (customer_id !== undefined && platform === undefined && platform_customer_id === undefined) return { customer_id };
  if (customer_id === undefined && platform !== undefined && platform_customer_id !== undefined) {
    return { platform, platform_customer_id };
  }
  throw new HttpError(400, 'bad_request', 'name a customer by customer_id, or by platform and platform_customer_id');
}

const notFound = (o: PredictOutcome & { kind: 'not_found' }) => new HttpError(404, 'not_found', o.reason);

/** A short, stable, non-reversible id of an API key: what rate limits and metrics see instead of the key. */
export function keyId(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now;
  const app = Fastify({
    logger: false, // the process logs through runtime/log (no request headers, so no keys, ever reach a log)
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  const registers = [deps.registry];
  const duration = new Histogram({
    name: 'api_request_duration_seconds',
    help: 'Time from request to response, by route and status',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const lookups = new Counter({
    name: 'api_predictions_total',
    help: 'Customers looked up, by outcome: cache (stream score served), computed (scored on demand), not_found, unavailable',
    labelNames: ['outcome'],
    registers,
  });
  const served = { cache: 0, computed: 0 };
  new Gauge({
    name: 'api_cache_hit_ratio',
    help: "Share of predictions served from the stream's cached score since start (the rest were scored on demand)",
    registers,
    collect() {
      const total = served.cache + served.computed;
      this.set(total === 0 ? 0 : served.cache / total);
    },
  });
  const decisions = new Counter({
    name: 'ad_decisions_total',
    help: 'Ad decisions made (exposure recorded), by ad type and intent level',
    labelNames: ['ad_type', 'intent_level'],
    registers,
  });
  const exposureFailures = new Counter({
    name: 'ad_exposures_failed_total',
    help: 'Ad decisions not answered because their exposure record could not be written',
    registers,
  });

  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    duration.observe({ route, method: req.method, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    done();
  });
  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send({ error: err.code, message: err.message });
    if (err.validation) return reply.code(400).send({ error: 'bad_request', message: err.message });
    const status = err.statusCode ?? 500;
    if (status === 429) return reply.code(429).send({ error: 'rate_limited', message: err.message });
    // The body limit (fastify's 1 MiB) and the content types it parses (JSON, text): say which, so a client knows what to change.
    if (status === 413) {
      return reply
        .code(413)
        .send({ error: 'payload_too_large', message: `${err.message} (limit ${app.initialConfig.bodyLimit} bytes)` });
    }
    if (status === 415) return reply.code(415).send({ error: 'unsupported_media_type', message: err.message });
    if (status >= 400 && status < 500) return reply.code(status).send({ error: 'bad_request', message: err.message });
    deps.log.error('request failed', { route: req.routeOptions.url, error: String(err) });
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'PatternOS prediction API',
        version: '1',
        description: 'Purchase-intent scores and ad decisions for the ad server',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });

  app.get('/health', { schema: { response: { 200: Type.Object({ status: Type.String() }) } } }, () => ({
    status: 'ok',
  }));
  app.get(
    '/ready',
    {
      schema: {
        response: {
          200: Type.Object({ ready: Type.Boolean(), model_version: Type.Union([Type.String(), Type.Null()]) }),
          503: Type.Object({ ready: Type.Boolean(), reasons: Type.Array(Type.String()) }),
        },
      },
    },
    async (_req, reply) => {
      const r = await deps.readiness();
      if (!r.ready) return reply.code(503).send({ ready: false, reasons: r.reasons });
      return { ready: true, model_version: r.modelVersion };
    },
  );
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
    reply.type(deps.registry.contentType).send(await deps.registry.metrics()),
  );
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());

  const lookup = async (refs: readonly CustomerRef[]): Promise<PredictOutcome[]> => {
    let outcomes: PredictOutcome[];
    try {
      outcomes = await deps.reader.predict(refs, now());
    } catch (err) {
      lookups.inc({ outcome: 'unavailable' }, refs.length);
      deps.log.warn('lookup failed', { error: String(err) });
      throw new HttpError(503, 'unavailable', 'the feature store is unavailable; try again');
    }
    for (const o of outcomes) {
      lookups.inc({ outcome: o.kind === 'found' ? o.prediction.source : o.kind });
      if (o.kind === 'found') served[o.prediction.source]++;
    }
    return outcomes;
  };
  const one = async (ref: CustomerRef) => {
    const [o] = await lookup([ref]);
    if (!o) throw new Error('no outcome');
    if (o.kind === 'not_found') throw notFound(o);
    if (o.kind === 'unavailable') throw new HttpError(503, 'unavailable', o.reason);
    return o.prediction;
  };

  // The data routes: bearer key, then the key's rate limit (after auth, so a wrong key is 401, never 429).
  await app.register(async (scope) => {
    const api = scope.withTypeProvider<TypeBoxTypeProvider>();
    const keys = new Set(deps.apiKeys);
    const keyIds = new Map<string, string>();
    await api.register(bearerAuth, {
      keys,
      errorResponse: (err) => ({ error: 'unauthorized', message: err.message }),
    });
    await api.register(rateLimit, {
      max: deps.rateLimitPerMinute,
      timeWindow: 60_000,
      hook: 'preHandler',
      // Runs after auth, so only configured keys reach it: the cache holds at most one entry per key.
      keyGenerator: (req) => {
        const header = req.headers.authorization ?? '';
        let id = keyIds.get(header);
        if (id === undefined) keyIds.set(header, (id = keyId(header)));
        return id;
      },
      errorResponseBuilder: (_req, ctx) => ({
        statusCode: 429,
        error: 'rate_limited',
        message: `more than ${ctx.max} requests per minute with this key; retry in ${ctx.after}`,
      }),
    });
    const secured = { security: [{ bearer: [] }] };
    const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 429: ErrorBody, 503: ErrorBody };

    api.post(
      '/predict-intent',
      {
        schema: {
          ...secured,
          summary: "One customer's purchase-intent score: the stream's cached score, or scored now from its features",
          body: PredictBody,
          response: { 200: Prediction, ...errors },
        },
      },
      async (req) => one(refOf(req.body)),
    );

    api.post(
      '/predict-intent/batch',
      {
        schema: {
          ...secured,
          summary: `Up to ${deps.batchMax} customers in one call (results in request order)`,
          body: Type.Object(
            { customers: Type.Array(PredictBody, { minItems: 1, maxItems: deps.batchMax }) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ results: Type.Array(BatchResult) }), ...errors },
        },
      },
      async (req) => {
        const refs = req.body.customers.map((c, i) => {
          try {
            return refOf(c);
          } catch (err) {
            throw new HttpError(400, 'bad_request', `customers[${i}]: ${(err as Error).message}`);
          }
        });
        const outcomes = await lookup(refs);
        return {
          results: outcomes.map((o) =>
            o.kind === 'found'
              ? { status: 200 as const, prediction: o.prediction }
              : {
                  status: o.kind === 'not_found' ? (404 as const) : (503 as const),
                  error: o.kind,
                  message: o.reason,
                },
          ),
        };
      },
    );

    api.post(
      '/ad-decision',
      {
        schema: {
          ...secured,
          summary: 'Choose the ad for a customer from its intent score, and record the exposure',
          body: Type.Object(
            { ...RefBody, placement: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })) },
            { additionalProperties: false },
          ),
          response: { 200: DecisionBody, ...errors },
        },
      },
      async (req) => {
        const ref = refOf(req.body);
        const prediction = await one(ref);
        const decidedAt = now();
        // Assigned by the global id answered for, so a merged-away id gets its survivor's variant.
        const enrolment = enrol(deps.experiments, prediction.customer_id, decidedAt, deps.adThresholds);
        const choice = decideAd(
          prediction.customer_id,
          prediction.intent_score,
          prediction.predicted_category,
          deps.catalog,
          enrolment.thresholds,
        );
        const record: AdDecision = {
          eventId: randomUUID(),
          eventTimeMs: decidedAt,
          customerId: prediction.customer_id,
          requestedId: describeRef(ref),
          adType: choice.adType,
          creativeId: choice.creative.id,
          category: choice.category,
          placement: req.body.placement ?? null,
          intentScore: prediction.intent_score,
          intentLevel: prediction.intent_level,
          predictedCategory: prediction.predicted_category,
          modelVersion: prediction.model_version,
          scoreSource: prediction.source === 'cache' ? 'CACHE' : 'COMPUTED',
          experiment: enrolment.experiment,
          variant: enrolment.variant,
        };
        try {
          await deps.exposures.publish(record);
        } catch (err) {
          exposureFailures.inc();
          deps.log.warn('exposure not recorded', { error: String(err) });
          throw new HttpError(503, 'unavailable', 'the decision could not be recorded; show a fallback ad');
        }
        decisions.inc({ ad_type: choice.adType, intent_level: prediction.intent_level });
        const c = choice.creative;
        return {
          decision_id: record.eventId,
          customer_id: record.customerId,
          ad_type: choice.adType,
          creative: {
            id: c.id,
            type: c.type,
            category: c.category ?? null,
            title: c.title,
            url: c.url ?? null,
            product_id: c.product_id ?? null,
          },
          placement: record.placement,
          intent_score: record.intentScore,
          intent_level: record.intentLevel,
          predicted_category: record.predictedCategory,
          model_version: record.modelVersion,
          score_source: prediction.source,
          experiment: record.experiment,
          variant: record.variant,
          decided_at: new Date(decidedAt).toISOString(),
        };
      },
    );

    const erase = deps.erase;
    if (erase) {
      api.post(
        '/erasure',
        {
          schema: {
            ...secured,
            summary:
              'Erase one person everywhere (their whole merged cluster): identity graph, feature state and scores, ' +
              'compacted topics, warehouse; answers once done (200) or with what is still pending (202)',
            body: PredictBody,
            response: { 200: ErasureBody, 202: ErasureBody, ...errors },
          },
        },
        async (req, reply) => {
          const ref = refOf(req.body);
          const subject: ErasureSubject =
            'customer_id' in ref
              ? { kind: 'global', globalId: ref.customer_id }
              : { kind: 'platform', platform: ref.platform, platformCustomerId: ref.platform_customer_id };
          let report: ErasureReport;
          try {
            report = await erase(subject);
          } catch (err) {
            deps.log.warn('erasure failed', { error: String(err) });
            throw new HttpError(503, 'unavailable', 'the erasure could not finish; repeat the request');
          }
          const c = report.counts;
          return reply.code(report.status === 'pending' ? 202 : 200).send({
            erasure_id: report.erasureId,
            status: report.status,
            counts: {
              found: c.found,
              global_ids: c.globalIds,
              identities: c.identities,
              graph_index_entries: c.graphIndexEntries,
              redis_keys: c.redisKeys,
              tombstones: c.tombstones,
              commands: c.commands,
              warehouse_rows: c.warehouseRows,
            },
            pending: [...report.pending],
          });
        },
      );
    }
  });
  return app;
}

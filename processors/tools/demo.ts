/**
 * `npm run demo`: the main job end to end. Brings up the local stack for every endpoint not configured in the
 * environment, applies topics, migrates the warehouse, generates the sample platforms' events (fixed seed), publishes
 * them through the platform producer library, runs the identity resolver, the feature processor and the warehouse sink
 * until Redis and ClickHouse hold every event, and prints a summary. The stack stays up afterwards. Re-running is safe: event ids are deterministic, so nothing is counted twice.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { migrate } from '../../clickhouse/migrate.js';
import { runNamedQuery } from '../../clickhouse/queries.js';
import { runModelMonitoring } from '../monitoring/job.js';
import { ensureStack } from './stack/stack.js';
import { applyTopics } from '../../topics/apply.js';
import { topicCatalogOf } from '../../topics/catalog.js';
import { IdentityGraph } from '../identity/graph-store.js';
import { pairwiseMetrics } from '../identity/resolve-offline.js';
import { generateSample } from '../producers/generate.js';
import { PlatformProducer } from '../producers/platform-producer.js';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig, type Config } from '../runtime/config.js';
import { createIdempotentProducer, createKafka } from '../runtime/kafka.js';
import { EventSerde } from '../runtime/serde.js';
import { FeatureStore } from '../features/store.js';
import { Pipeline } from '../pipeline.js';
import { sampleBadRecords } from '../demo-bad-records.js';
import { startBackgroundApi } from './api-background.js';

const step = (name: string) => {
  const started = Date.now();
  process.stdout.write(`• ${name} … `);
  return (detail = '') => {
    console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s${detail ? ` — ${detail}` : ''}`);
  };
};

async function main(): Promise<void> {
  const totalStart = Date.now();
  let done = step('stack');
  const endpoints = await ensureStack({ log: () => undefined });
  process.env['KAFKA_BROKERS'] ??= endpoints.kafkaBrokers.join(',');
  process.env['SCHEMA_REGISTRY_URL'] ??= endpoints.schemaRegistryUrl;
  process.env['REDIS_URL'] ??= endpoints.redisUrl;
  process.env['CLICKHOUSE_URL'] ??= endpoints.clickhouseUrl;
  // The sample is history (it ends months before today): score it as of its own newest event, as a replay should,
  // not as of the wall clock, which would rescore every customer as long gone.
  process.env['SCORING_CLOCK'] ??= 'event';
  const config = loadConfig();
  done();

  done = step('topics');
  const kafka = createKafka(config, `${config.KAFKA_CLIENT_ID}-demo`);
  const serde = EventSerde.forUrl(config.SCHEMA_REGISTRY_URL);
  const topics = topicCatalogOf(config);
  const admin = kafka.admin();
  await admin.connect();
  const plan = await applyTopics(admin, topics.all, { serde });
  await admin.disconnect();
  done(
    `${plan.filter((a) => a.kind === 'create').length} created, ${plan.filter((a) => a.kind === 'unchanged').length} unchanged`,
  );

  done = step('warehouse migrations');
  const migration = await migrate(createClickHouse(config, { database: null }), config.CLICKHOUSE_DATABASE);
  done(`${migration.applied.length} applied, ${migration.skipped.length} already there`);

  done = step('generate sample platforms');
  const sample = generateSample({ salt: config.IDENTITY_HASH_SALT.reveal() });
  mkdirSync('out/generated', { recursive: true });
  writeFileSync(
    'out/generated/ground_truth.csv',
    `platform,platform_customer_id,person_id\n${sample.groundTruth.map((g) => `${g.platform},${g.platformCustomerId},${g.personId}`).join('\n')}\n`,
  );
  const persons = new Map<string, Set<string>>();
  for (const g of sample.groundTruth) persons.set(g.personId, (persons.get(g.personId) ?? new Set()).add(g.platform));
  const crossPlatform = [...persons.values()].filter((p) => p.size > 1).length;
  const platforms = new Set(sample.groundTruth.map((g) => g.platform));
  done(
    `${persons.size} customers, ${sample.transactions.length} transactions, ${sample.behaviors.length} click events`,
  );

  done = step('publish through the platform producer');
  const producer = await PlatformProducer.connect(config, { kafka, serde, topics });
  const events = [
    ...sample.transactions.map((value) => ({ at: value.eventTimeMs, send: () => producer.sendTransaction(value) })),
    ...sample.behaviors.map((value) => ({ at: value.eventTimeMs, send: () => producer.sendBehavior(value) })),
  ].sort((a, b) => a.at - b.at);
  for (let i = 0; i < events.length; i += 2_000) await Promise.all(events.slice(i, i + 2_000).map((e) => e.send()));
  await producer.disconnect();
  // A few records as a buggy platform would send them, to show the dead-letter path (the library refuses these, so
  // they go out through a raw producer).
  const raw = createIdempotentProducer(kafka);
  await raw.connect();
  const bad = await sampleBadRecords(serde, topics);
  await raw.sendBatch({ acks: -1, topicMessages: bad.map(({ topic, message }) => ({ topic, messages: [message] })) });
  await raw.disconnect();
  done(`${events.length} events + ${bad.length} deliberately bad records`);

  done = step('identity resolver, feature processor and warehouse sink until all have caught up');
  const clickhouse = createClickHouse(config);
  const pipeline = new Pipeline({ config, kafka, serde, topics, clickhouse });
  await pipeline.start();
  const countOf = async (sql: string) =>
    Number((await (await clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<{ n: string }>())[0]?.n ?? 0);
  // The sample's platforms are its own (replayed datasets use other platform ids), so counting by platform is exact.
  const platformList = [...platforms].map((p) => `'${p}'`).join(',');
  const admin2 = kafka.admin();
  await admin2.connect();
  // Caught up = nothing left to consume (committed offsets at the end of every partition); works on re-runs too.
  await pipeline.waitUntilCaughtUp(admin2, 300_000);
  const landed = {
    tx: await countOf(`SELECT count() AS n FROM fact_transaction FINAL WHERE platform_id IN (${platformList})`),
    ev: await countOf(`SELECT count() AS n FROM fact_event FINAL WHERE platform_id IN (${platformList})`),
    dl: await countOf(`SELECT count() AS n FROM dead_letter FINAL`),
  };
  done();

  // Scores: the scorer runs inside the pipeline once a model is current; train one on this warehouse if there is none.
  const modelVersion = () => pipeline.models.current?.version; // a call: check() below changes what it returns
  if (!modelVersion()) {
    done = step('train the intent model on the demo warehouse (npm run train; no current model yet)');
    await trainModel(config);
    await pipeline.models.check();
    if (!modelVersion()) throw new Error('training promoted no model: see its report above');
    done(`model ${modelVersion() ?? ''}`);
  }
  done = step(`score every customer as of the newest event (model ${modelVersion() ?? 'none'})`);
  const newest = events.reduce((max, e) => Math.max(max, e.at), -Infinity); // a spread of ~125,000+ overflows
  const rescored = await pipeline.rescoreAsOf(newest);
  await pipeline.waitUntilCaughtUp(admin2, 120_000);
  done(`${rescored} scored (customers and anonymous sessions)`);
  // The Model Performance dashboard reads this table. Only scores held through a day whose 7-day outcome window has
  // closed can be judged, so a first demo (trained after the replay, scored at its end) judges no day yet.
  done = step('online model monitoring (npm run monitor), for the Model Performance dashboard');
  const judged = await runModelMonitoring(clickhouse, { days: 30 });
  done(
    judged.length === 0 ? 'no day judged yet (scores are as of the newest event)' : `${judged.length} days × models`,
  );

  const redis = new Redis(config.REDIS_URL);
  const graph = IdentityGraph.open(redis, {
    prefix: config.TOPIC_PREFIX,
    maxClusterSize: config.IDENTITY_MAX_CLUSTER_SIZE,
  });
  const accountKeys = sample.groundTruth.map((g) => `${g.platform}:${g.platformCustomerId}`);
  const roots = await graph.globalIdOf(accountKeys);
  const resolved = new Map<string, string>();
  for (const key of accountKeys) {
    const root = roots.get(key);
    if (root) resolved.set(key, root);
  }
  const truePairs: [string, string][] = [];
  const accountsOf = new Map<string, string[]>();
  for (const g of sample.groundTruth) {
    accountsOf.set(g.personId, [...(accountsOf.get(g.personId) ?? []), `${g.platform}:${g.platformCustomerId}`]);
  }
  for (const accounts of accountsOf.values()) {
    accounts.forEach((a, i) => {
      for (const b of accounts.slice(i + 1)) truePairs.push([a, b]);
    });
  }
  const quality = pairwiseMetrics(resolved, truePairs);
  const platformsOfCustomer = new Map<string, Set<string>>();
  for (const [key, root] of resolved) {
    platformsOfCustomer.set(root, (platformsOfCustomer.get(root) ?? new Set()).add(key.slice(0, key.indexOf(':'))));
  }
  const resolvedCross = [...platformsOfCustomer.values()].filter((p) => p.size > 1).length;
  const features = await featureSummary(redis, config.TOPIC_PREFIX, [...platformsOfCustomer.keys()]);
  const scores = await scoreSummary(redis, config.TOPIC_PREFIX, [...platformsOfCustomer.keys()]);
  redis.disconnect();
  done = step('prediction API (npm run start:api), left running for the ad server');
  const api = await startBackgroundApi(config);
  const example = scores.highest ?? [...platformsOfCustomer.keys()][0] ?? 'c-1';
  const apiKey = config.API_KEYS[0]?.reveal() ?? '';
  const decision = await fetch(`${api.url}/ad-decision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ customer_id: example, placement: 'demo' }),
  });
  const decided = (await decision.json()) as Record<string, unknown>;
  if (!decision.ok) throw new Error(`POST /ad-decision answered ${decision.status}: ${JSON.stringify(decided)}`);
  const creative = decided['creative'] as Record<string, unknown>;
  // The pipeline's warehouse sink lands the decision's exposure record before it stops.
  await pipeline.waitUntilCaughtUp(admin2, 120_000);
  const exposures = await countOf(`SELECT count() AS n FROM fact_ad_decision FINAL`);
  await admin2.disconnect();
  await pipeline.stop();
  done(`pid ${api.pid} on ${api.url}`);
  const counts = (await runNamedQuery(clickhouse, 'counts'))[0] ?? {};
  const revenue = await runNamedQuery(clickhouse, 'revenue-by-platform');
  await clickhouse.close();
  const money = (minor: unknown) => (Number(minor) / 100).toFixed(2);
  const pct = (n: number, d: number) => `${((100 * n) / Math.max(d, 1)).toFixed(1)} %`;
  console.log(`
Summary
  customers (ground truth)        ${persons.size}
  platforms                       ${platforms.size} (${[...platforms].join(', ')})
  platform accounts               ${sample.groundTruth.length}
  cross-platform customers        ${crossPlatform} (${pct(crossPlatform, persons.size)}, per ground truth in out/generated/ground_truth.csv)
  customers resolved              ${platformsOfCustomer.size} (identity resolver; warehouse dim_customer: ${String(counts['customers'])})
  cross-platform, resolved        ${resolvedCross} (${pct(resolvedCross, platformsOfCustomer.size)})
  matching vs ground truth        pairwise precision ${quality.precision.toFixed(4)}, recall ${quality.recall.toFixed(4)}, F1 ${quality.f1.toFixed(4)}
  transactions in the warehouse   ${landed.tx}
  click events in the warehouse   ${landed.ev}
  customers with features (Redis) ${features.customers} (e.g. HGETALL ${features.exampleKey}); ${features.withPurchase} with a purchase in 90 days, top categories ${features.topCategories}
  customers with a score (Redis)  ${scores.customers} (e.g. HGETALL ${scores.exampleKey}); intent HIGH ${scores.levels.get('HIGH') ?? 0}, MEDIUM ${scores.levels.get('MEDIUM') ?? 0}, LOW ${scores.levels.get('LOW') ?? 0}; model ${scores.models}
  dead letters (all runs)         ${landed.dl} (each processor parks what it refuses: npm run query -- dead-letters-by-reason)
  warehouse totals                ${JSON.stringify(counts)}
  revenue by platform             ${revenue.map((r) => `${String(r['platform_id'])} ${String(r['currency'])} ${money(r['net_minor'])}`).join('; ')}

Prediction API (left running: pid ${api.pid}, log ${api.log}; kill $(cat out/api.pid) stops it)
  curl -s -X POST ${api.url}/predict-intent -H 'authorization: Bearer ${apiKey}' -H 'content-type: application/json' -d '{"customer_id":"${example}"}'
  ad decision for ${example}: ${String(decided['ad_type'])} ad ${String(creative['id'])} (intent ${String(decided['intent_level'])}, score ${Number(decided['intent_score']).toFixed(3)}), exposure in fact_ad_decision (${exposures} decisions there, all runs)
  routes: ${api.url}/openapi.json
  dashboards: ${api.url}/dashboards (Overview, Cross-Platform Insights, Model Performance; npm run dashboards -- screenshot out/dashboards)

Endpoints (the stack stays up; npm run stack -- down stops it)
  KAFKA_BROKERS=${config.KAFKA_BROKERS.join(',')}
  SCHEMA_REGISTRY_URL=${config.SCHEMA_REGISTRY_URL}
  REDIS_URL=${config.REDIS_URL}
  CLICKHOUSE_URL=${config.CLICKHOUSE_URL} (database ${config.CLICKHOUSE_DATABASE})
Total ${((Date.now() - totalStart) / 1000).toFixed(1)} s`);
}

/** What the ad server would find in Redis as scores. */
async function scoreSummary(redis: Redis, prefix: string, customers: readonly string[]) {
  const levels = new Map<string, number>();
  const models = new Set<string>();
  let scored = 0;
  let highest: string | null = null;
  let best = -1;
  for (const id of customers) {
    const hash = await redis.hgetall(`${prefix}score:{${id}}`);
    if (!hash['intent_level']) continue;
    scored++;
    levels.set(hash['intent_level'], (levels.get(hash['intent_level']) ?? 0) + 1);
    if (hash['model_version']) models.add(hash['model_version']);
    if (Number(hash['intent_score']) > best) [best, highest] = [Number(hash['intent_score']), id];
  }
  return {
    customers: scored,
    /** The customer with the highest score (the demo's example for the API). */
    highest,
    levels,
    models: [...models].join(', '),
    exampleKey: `${prefix}score:{${customers[0] ?? 'c-1'}}`,
  };
}

/** `npm run train` on this warehouse, asynchronously so the pipeline's consumers keep their group membership. */
async function trainModel(config: Config): Promise<void> {
  const child = spawn(process.execPath, ['training/train.mjs'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CLICKHOUSE_URL: config.CLICKHOUSE_URL, CLICKHOUSE_DATABASE: config.CLICKHOUSE_DATABASE },
  });
  const status = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (status !== 0) throw new Error(`npm run train failed (exit ${String(status)})`);
}

/** What the ad server would find in Redis for the resolved customers. */
async function featureSummary(redis: Redis, prefix: string, customers: readonly string[]) {
  const store = new FeatureStore(redis, { prefix, stateTtlSeconds: 60, featuresTtlSeconds: 60, scoresTtlSeconds: 60 });
  let withFeatures = 0;
  let withPurchase = 0;
  const top = new Map<string, number>();
  for (const id of customers) {
    const hash = await store.readFeatures(id);
    if (!hash['feature_time_ms']) continue;
    withFeatures++;
    if (Number(hash['frequency_90d']) > 0) withPurchase++;
    const category = hash['top_category'];
    if (category) top.set(category, (top.get(category) ?? 0) + 1);
  }
  const topCategories = [...top]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  return { customers: withFeatures, withPurchase, topCategories, exampleKey: store.featuresKey(customers[0] ?? 'c-1') };
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`\ndemo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);

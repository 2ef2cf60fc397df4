/**
 * `npm run erase -- --platform <platform> --customer <platform customer id>` or `-- --global <global customer id>`
 * [`--no-wait`]: erases one person (their whole merged cluster) everywhere (see erase.ts), prints what was removed
 * and one JSON line. Exit 0 when done or nobody was found, 2 when something is still pending (named), 1 on error.
 */
import { Redis } from 'ioredis';
import { topicCatalogOf } from '../../topics/catalog.js';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { createKafka } from '../runtime/kafka.js';
import { createLogger } from '../runtime/log.js';
import { EventSerde } from '../runtime/serde.js';
import { erasePerson } from './erase.js';
import { parseErasureArgs } from './logic.js';

let args: ReturnType<typeof parseErasureArgs>;
try {
  args = parseErasureArgs(process.argv.slice(2));
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
}
const config = loadConfig();
const kafka = createKafka(config, `${config.KAFKA_CLIENT_ID}-erase`);
const admin = kafka.admin();
const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
const clickhouse = createClickHouse(config);
try {
  await admin.connect();
  const report = await erasePerson(
    {
      config,
      kafka,
      admin,
      serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL),
      topics: topicCatalogOf(config),
      redis,
      clickhouse,
      log: createLogger(config.LOG_LEVEL, { tool: 'erase' }),
    },
    args.subject,
    { wait: args.wait },
  );
  const c = report.counts;
  console.log(`erasure ${report.erasureId}: ${report.status}`);
  console.log(
    `  identity graph   ${c.identities} identities, ${c.globalIds} global ids, ${c.graphIndexEntries} index entries`,
  );
  console.log(`  redis            ${c.redisKeys} customer keys`);
  console.log(`  kafka            ${c.tombstones} tombstones, ${c.commands} erasure commands`);
  for (const [table, rows] of Object.entries(c.warehouseRows)) {
    if (rows > 0) console.log(`  warehouse        ${table}: ${rows} rows`);
  }
  for (const p of report.pending) console.log(`  pending: ${p}`);
  console.log(JSON.stringify({ erasure: report.erasureId, status: report.status, counts: c, pending: report.pending }));
  process.exitCode = report.status === 'pending' ? 2 : 0;
} catch (err) {
  console.error(`erasure failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await admin.disconnect().catch(() => undefined);
  redis.disconnect();
  await clickhouse.close();
}

/** `npm run topics -- apply [--dry-run] | list`: makes the cluster match topics/catalog.ts and prints the diff. */
import { loadConfig } from '../processors/runtime/config.js';
import { createKafka } from '../processors/runtime/kafka.js';
import { EventSerde } from '../processors/runtime/serde.js';
import { applyTopics } from './apply.js';
import { topicCatalogOf } from './catalog.js';

async function main(argv: string[]): Promise<number> {
  const [command = 'list', ...rest] = argv;
  const config = loadConfig();
  const catalog = topicCatalogOf(config);
  if (command === 'list') {
    for (const t of catalog.all) {
      console.log(
        `${t.name}\tpartitions=${t.partitions}\tcleanup=${t.cleanupPolicy}\tretention.ms=${t.retentionMs}\tschema=${t.schema}\tkey=${t.key}${t.deadLetterTopic ? `\tdlq=${t.deadLetterTopic}` : ''}`,
      );
    }
    return 0;
  }
  if (command !== 'apply') {
    console.error('usage: npm run topics -- apply [--dry-run] | list');
    return 2;
  }
  const dryRun = rest.includes('--dry-run');
  const admin = createKafka(config, `${config.KAFKA_CLIENT_ID}-topics`).admin();
  await admin.connect();
  try {
    const plan = await applyTopics(admin, catalog.all, {
      dryRun,
      log: (l) => {
        console.log(l);
      },
      ...(dryRun ? {} : { serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL) }),
    });
    const counts = plan.reduce<Record<string, number>>((acc, a) => ({ ...acc, [a.kind]: (acc[a.kind] ?? 0) + 1 }), {});
    console.log(`${dryRun ? 'would apply' : 'applied'}: ${JSON.stringify(counts)}`);
    return plan.some((a) => a.kind === 'conflict') ? 1 : 0;
  } finally {
    await admin.disconnect();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);

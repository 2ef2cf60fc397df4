/**
 * `npm run identity:graph -- status | migrate`: the identity graph of `TOPIC_PREFIX` on `REDIS_URL`.
 * - `status`: identities, clusters, and how personal data is kept (format and key id; none = empty or written before
 *   sealing). Prints one JSON line.
 * - `migrate`: seals a graph written before personal data was sealed (IdentityGraph.migrateToSealed), with the key in
 *   `IDENTITY_PII_KEY`. Stop every identity resolver of the prefix first; resolvers of this version refuse an unsealed
 *   graph, so they cannot mix the two. Resumable: run it again after a crash.
 */
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { loadConfig } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { IdentityGraph } from './graph-store.js';
import { PiiCodec } from './pii-codec.js';

const USAGE = 'usage: npm run identity:graph -- status | migrate';

async function main(argv: readonly string[]): Promise<number> {
  const command = argv[0];
  if (argv.length !== 1 || (command !== 'status' && command !== 'migrate')) throw new AppError('USAGE', USAGE);
  const config = loadConfig();
  const codec = PiiCodec.fromConfig(config);
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
  try {
    const graph = IdentityGraph.open(redis, { prefix: config.TOPIC_PREFIX, codec });
    if (command === 'status') {
      const { format, keyId } = await graph.piiFormat();
      console.log(
        JSON.stringify({
          prefix: config.TOPIC_PREFIX,
          ...(await graph.stats()),
          piiFormat: format || null,
          piiKeyId: keyId || null,
          configuredKeyId: codec.keyId,
        }),
      );
      return 0;
    }
    let last = 0;
    const result = await graph.migrateToSealed((done) => {
      if (Date.now() - last < 2_000) return;
      last = Date.now();
      console.error(`sealed ${done.records} records, renamed ${done.sets} sets`);
    });
    if (result.alreadySealed) console.error(`already sealed with key id ${codec.keyId}: nothing to do`);
    console.log(JSON.stringify({ prefix: config.TOPIC_PREFIX, keyId: codec.keyId, ...result }));
    return 0;
  } finally {
    redis.disconnect();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(describeError(err));
      process.exit(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
    },
  );
}

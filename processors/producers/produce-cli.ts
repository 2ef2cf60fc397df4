/**
 * `npm run produce -- <transactions|behaviors> <file.jsonl> [--schema-only]`: publishes one JSON event per line
 * through the platform producer library (the format `npm run generate` writes). Every line is validated first; lines
 * that fail are reported with their line number and reason and are not sent; the exit code is 1 if any failed.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';
import { loadConfig } from '../runtime/config.js';
import { describeError } from '../runtime/errors.js';
import { PlatformProducer } from './platform-producer.js';

async function main(argv: string[]): Promise<number> {
  const [kind, file] = argv;
  if ((kind !== 'transactions' && kind !== 'behaviors') || !file) {
    console.error('usage: npm run produce -- <transactions|behaviors> <file.jsonl> [--schema-only]');
    return 2;
  }
  const producer = await PlatformProducer.connect(loadConfig(), {
    validation: argv.includes('--schema-only') ? 'schema' : 'full',
  });
  let sent = 0;
  let failed = 0;
  let lineNo = 0;
  let window: Promise<void>[] = [];
  const started = Date.now();
  const report = (n: number, err: unknown) => {
    failed++;
    console.error(`line ${n}: ${describeError(err)}`);
  };
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    const n = ++lineNo;
    if (!line.trim()) continue;
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch (err) {
      report(n, err);
      continue;
    }
    const send =
      kind === 'transactions'
        ? producer.sendTransaction(event as Transaction)
        : producer.sendBehavior(event as BehaviorEvent);
    window.push(
      send.then(
        () => {
          sent++;
        },
        (err: unknown) => {
          report(n, err);
        },
      ),
    );
    if (window.length >= 2_000) {
      await Promise.all(window); // bounded in-flight: memory stays flat on large files
      window = [];
    }
  }
  await Promise.all(window);
  await producer.disconnect();
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `${sent} sent, ${failed} refused, ${seconds.toFixed(1)} s (${Math.round(sent / Math.max(seconds, 0.001))} events/s)`,
  );
  return failed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(describeError(err));
    process.exit(1);
  },
);

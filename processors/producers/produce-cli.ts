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
import { PlatformProducer, type PlatformEvent } from './platform-producer.js';

async function main(argv: string[]): Promise<number> {
  const [kind, file] = argv;
  if ((kind !== 'transactions' && kind !== 'behaviors') || !file) {
    console.error('usage: npm run produce -- <transactions|behaviors> <file.jsonl> [--schema-only]');
    return 2;
  }
  const producer = await PlatformProducer.connect(loadConfig(), {
    validation: argv.includes('--schema-only') ? 'schema' : 'full',
  });
  let failed = 0;
  const started = Date.now();
  const report = (where: string, err: unknown) => {
    failed++;
    console.error(`${where}: ${describeError(err)}`);
  };
  async function* events(): AsyncGenerator<PlatformEvent> {
    let lineNo = 0;
    for await (const line of createInterface({ input: createReadStream(file ?? ''), crlfDelay: Infinity })) {
      lineNo++;
      if (!line.trim()) continue;
      try {
        const event = JSON.parse(line) as Transaction & BehaviorEvent;
        yield kind === 'transactions' ? { kind: 'transaction', event } : { kind: 'behavior', event };
      } catch (err) {
        report(`line ${lineNo}`, err);
      }
    }
  }
  const { acknowledged: sent, refused } = await producer.publishAll(events(), {
    onRefused: (item, err) => {
      report(item.event.eventId, err);
    },
  });
  await producer.disconnect();
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `${sent} sent, ${failed} refused, ${seconds.toFixed(1)} s (${Math.round(sent / Math.max(seconds, 0.001))} events/s)`,
  );
  return failed + refused > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(describeError(err));
    process.exit(1);
  },
);

/**
 * The hostile-input corpus (issue 14): records generated here go through every door of the system on a scratch run of
 * the configured stack (its own topics, Redis keys and database, removed afterwards), and every one is accounted for.
 *
 * - Raw topics: malformed, truncated and trailing-garbage Avro, unknown and wrong schema ids, a lone magic byte, null
 *   and empty values, null keys, negative and huge amounts, a varint that never ends (where a NaN would have to
 *   hide: the contracts have no floating-point field), 1 MB strings, unicode edge cases, SQL-looking strings,
 *   timestamps far in the future and past, duplicate event ids, and ordinary records. The real pipeline (resolver,
 *   feature processor, warehouse sink, built by processors/pipeline.ts) runs on them. Every record must be either
 *   processed with its effect visible (the resolver's output carries the record's source coordinates; the sink's row
 *   is in ClickHouse) or dead-lettered with its reason, by each processor that reads it, exactly as the corpus
 *   expects; the strings stored in ClickHouse must equal the strings sent as the contract reads them (so nothing
 *   reached SQL unescaped; avsc writes a lone surrogate as 3 CESU-8 bytes, which read back as 3 × U+FFFD); then
 *   ordinary records sent after the corpus must be processed too.
 * - Command-line input files: a FEBRL-format and an Online Retail CSV file with stray quotes, wrong column counts, a
 *   byte-order mark, CRLF, blank lines and Latin-1 bytes, read by the same code as `identity:eval`, `identity:train`
 *   and `replay`: each bad line must be reported with its number and reason, every other line read.
 * - The prediction API (built by its factory, processors/api/app.ts): oversized and malformed bodies, missing and
 *   wrong keys, wrong types; each must get its 4xx, never a 5xx.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KafkaMessage, Message } from 'kafkajs';
import { readFebrlFile } from '../identity/febrl-file.js';
import { ApiApp } from '../api/app.js';
import { Pipeline } from '../pipeline.js';
import type { BadLine } from '../producers/csv-lines.js';
import { onlineRetailFile } from '../producers/replay.js';
import { SOURCE_HEADER } from '../runtime/headers.js';
import { createIdempotentProducer } from '../runtime/kafka.js';
import { createLogger } from '../runtime/log.js';
import { avroType } from '../runtime/serde.js';
import { createMetrics } from '../runtime/metrics.js';
import type { BehaviorEvent, DeadLetter, Transaction } from '../../schemas/generated/types.js';
import type { TopicSpec } from '../../topics/catalog.js';
import type { StackEndpoints } from './stack/stack.js';
import { openScratchRun, type ScratchRun } from './scratch-run.js';

/** How many records each door gets. The raw door's count includes the ordinary records sent after the corpus. */
export interface HostileSizes {
  readonly raw: number;
  readonly files: number;
  readonly api: number;
}
export const DEFAULT_SIZES: HostileSizes = { raw: 10_000, files: 4_000, api: 600 };

/** One door's outcome. `byReason`: dead-lettered or reported records (or refused requests) by reason. */
export interface DoorCounts {
  sent: number;
  processed: number;
  deadLettered: number;
  /** Blank lines of a file: read and skipped, not an error. */
  skipped: number;
  byReason: Record<string, number>;
  /** Records neither processed nor dead-lettered / reported. */
  lost: number;
  /** Records whose outcome differs from the corpus's expectation (processed when refusal was due, or the reverse). */
  misjudged: number;
  crashes: number;
  hangs: number;
}

export interface HostileReport {
  /** Per door; the raw door once per processor that reads raw topics (resolver, sink). */
  readonly doors: Record<string, DoorCounts>;
  /** Strings sent in SEARCH events (SQL-looking, unicode) whose ClickHouse row differs from what was sent. */
  readonly stringsAltered: number;
  readonly stringsChecked: number;
  /** Ordinary records sent after the corpus that were not processed by every processor. */
  readonly afterCorpusMissing: number;
  readonly seconds: number;
  /** Every failure as one sentence (empty: the corpus passed). */
  readonly problems: readonly string[];
}

const emptyDoor = (): DoorCounts => ({
  sent: 0,
  processed: 0,
  deadLettered: 0,
  skipped: 0,
  byReason: {},
  lost: 0,
  misjudged: 0,
  crashes: 0,
  hangs: 0,
});

/** Strings whose bytes must come back from ClickHouse unchanged. */
export const SQL_STRINGS: readonly string[] = [
  "'; DROP TABLE fact_event; --",
  "1' OR '1'='1",
  "\\'; SELECT 1; --",
  '\\',
  '\\N',
  'a\tb\nc\rd',
  "') FORMAT JSONEachRow --",
  '{name:String} ? $1 :param',
  '`backtick` "double" \'single\'',
  '\u0000 nul byte',
  '%s %d %n',
  '/* comment */ UNION ALL SELECT * FROM system.users',
];
/** Unicode edge cases; lone surrogates cannot be UTF-8, so they are stored as U+FFFD (what UTF-8 encoding makes them). */
export const UNICODE_STRINGS: readonly string[] = [
  'lone high \uD800 surrogate',
  'lone low \uDC00 surrogate',
  'rtl \u202Eevil.exe\u202C override',
  'عربي עברית mixed',
  'zero\u200Bwidth\u200C\u200Djoin\u2060',
  'emoji 👩‍👩‍👧‍👦 🏳️‍🌈 🇬🇧',
  'combining e\u0301 a\u0308',
  'ｆｕｌｌｗｉｄｔｈ',
  '\uFFFF\uFFFE non-characters',
  '𝕄𝕒𝕥𝕙 astral',
];

type Expect = 'processed' | 'dead-letter';
interface RawCase {
  readonly kind: string;
  readonly spec: TopicSpec;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly expect: Expect;
  /** The event id of a record expected to be processed (its warehouse row). */
  readonly eventId?: string;
  /** A SEARCH event's query, to compare with the stored row. */
  readonly searchQuery?: string;
}

const BASE_MS = Date.now() - 86_400_000;

function behavior(i: number, overrides: Partial<BehaviorEvent> = {}): BehaviorEvent {
  return {
    eventId: `hostile-ev-${i}`,
    eventTimeMs: BASE_MS + i,
    platform: 'hostile',
    platformCustomerId: `c-${i % 500}`,
    sessionId: `s-${i % 700}`,
    deviceId: null,
    type: 'VIEW',
    productId: `p-${i % 50}`,
    category: 'toys',
    searchQuery: null,
    quantity: null,
    priceMinor: 999,
    currency: 'GBP',
    orderId: null,
    identity: null,
    reviewText: null,
    reviewSentiment: null,
    ...overrides,
  };
}

function transaction(i: number, overrides: Partial<Transaction> = {}): Transaction {
  return {
    eventId: `hostile-tx-${i}`,
    eventTimeMs: BASE_MS + i,
    platform: 'hostile',
    platformCustomerId: `c-${i % 500}`,
    orderId: `o-${i}`,
    kind: 'PURCHASE',
    lineItems: [
      { productId: `p-${i % 50}`, productName: 'toy', category: 'toys', brand: null, quantity: 1, unitPriceMinor: 500 },
    ],
    totalMinor: 500,
    currency: 'GBP',
    sessionId: null,
    deviceId: null,
    identity: null,
    couponCode: null,
    ...overrides,
  };
}

/** The raw-topic corpus: `count` records over both raw topics, each with the outcome it must have. */
export async function rawCorpus(run: Pick<ScratchRun, 'serde' | 'topics'>, count: number): Promise<RawCase[]> {
  const { serde, topics } = run;
  const clicks = topics.clicksRaw;
  const txs = topics.transactionsRaw;
  const enc = (spec: TopicSpec, v: unknown) => serde.encode(spec, v);
  const key = (s: string) => Buffer.from(s);
  const makers: ((i: number) => RawCase | RawCase[] | Promise<RawCase | RawCase[]>)[] = [
    (i) => {
      const value = randomBytes(1 + (i % 60));
      value[0] = 1 + ((value[0] ?? 0) % 255); // never the magic byte: not the wire format
      return { kind: 'random bytes', spec: i % 2 ? clicks : txs, key: key(`k${i}`), value, expect: 'dead-letter' };
    },
    async (i) => {
      const value = await enc(clicks, behavior(i));
      return {
        kind: 'truncated Avro',
        spec: clicks,
        key: key(`k${i}`),
        value: value.subarray(0, value.length - 4),
        expect: 'dead-letter',
      };
    },
    async (i) => {
      const value = Buffer.concat([await enc(txs, transaction(i)), Buffer.from([1, 2, 3])]);
      return { kind: 'trailing bytes', spec: txs, key: key(`k${i}`), value, expect: 'dead-letter' };
    },
    async (i) => {
      const value = Buffer.from(await enc(clicks, behavior(i)));
      value.writeInt32BE(0x7ffffff0 - (i % 1000), 1);
      return { kind: 'unknown schema id', spec: clicks, key: key(`k${i}`), value, expect: 'dead-letter' };
    },
    async (i) => ({
      // A transaction's bytes and schema id on the clicks topic: the writer schema cannot be read as a BehaviorEvent.
      kind: 'wrong schema id',
      spec: clicks,
      key: key(`k${i}`),
      value: await enc(txs, transaction(i)),
      expect: 'dead-letter',
    }),
    (i) => ({
      kind: 'lone magic byte',
      spec: i % 2 ? clicks : txs,
      key: key(`k${i}`),
      value: Buffer.from([0]),
      expect: 'dead-letter',
    }),
    (i) => ({
      kind: 'null value',
      spec: i % 2 ? clicks : txs,
      key: key(`k${i}`),
      value: null,
      expect: 'dead-letter',
    }),
    () => ({ kind: 'empty value', spec: clicks, key: null, value: Buffer.alloc(0), expect: 'dead-letter' }),
    async (i) => {
      // The wire header and a varint of 0xff bytes that never terminates, where the eventId's length would be.
      const header = (await enc(clicks, behavior(i))).subarray(0, 5);
      return {
        kind: 'endless varint',
        spec: clicks,
        key: key(`k${i}`),
        value: Buffer.concat([header, Buffer.alloc(12, 0xff)]),
        expect: 'dead-letter',
      };
    },
    async (i) => {
      const tx = transaction(i, {
        lineItems: transaction(i).lineItems.map((l) => ({ ...l, unitPriceMinor: -500 })),
        totalMinor: -500,
      });
      return {
        kind: 'negative amount',
        spec: txs,
        key: key(`hostile:c-${i % 500}`),
        value: await enc(txs, tx),
        expect: 'dead-letter',
      };
    },
    async (i) => {
      const tx = transaction(i, { totalMinor: 2 ** 52 }); // the largest long avsc writes; refused by the amount rule
      return {
        kind: 'huge amount',
        spec: txs,
        key: key(`hostile:c-${i % 500}`),
        value: await enc(txs, tx),
        expect: 'dead-letter',
      };
    },
    async (i) => {
      const ev = behavior(i, { eventTimeMs: Date.UTC(3000, 0, 1) + i });
      return {
        kind: 'far-future time',
        spec: clicks,
        key: key(`hostile:c-${i % 500}`),
        value: await enc(clicks, ev),
        expect: 'dead-letter',
      };
    },
    async (i) => {
      const ev = behavior(i, { eventTimeMs: i % 2 ? -86_400_000 : 86_400_000 });
      return {
        kind: 'far-past time',
        spec: clicks,
        key: key(`hostile:c-${i % 500}`),
        value: await enc(clicks, ev),
        expect: 'dead-letter',
      };
    },
    async (i) => {
      const query = SQL_STRINGS[i % SQL_STRINGS.length] ?? '';
      const ev = behavior(i, { type: 'SEARCH', searchQuery: query, productId: null });
      return {
        kind: 'SQL-looking string',
        spec: clicks,
        key: key(`hostile:c-${i % 500}`),
        value: await enc(clicks, ev),
        expect: 'processed',
        eventId: ev.eventId,
        searchQuery: query,
      };
    },
    async (i) => {
      const query = UNICODE_STRINGS[i % UNICODE_STRINGS.length] ?? '';
      const ev = behavior(i, {
        type: 'SEARCH',
        searchQuery: query,
        productId: null,
        platformCustomerId: `ü-${query.slice(0, 12)}-${i % 50}`,
      });
      const value = await enc(clicks, ev);
      const read = avroType('behaviorEvent').fromBuffer(value.subarray(5)) as BehaviorEvent;
      return {
        kind: 'unicode edge case',
        spec: clicks,
        key: key(`hostile:x`),
        value,
        expect: 'processed',
        eventId: ev.eventId,
        // What the contract reads back: avsc writes a lone surrogate as its 3 CESU-8 bytes, which read as 3 × U+FFFD.
        searchQuery: read.searchQuery ?? '',
      };
    },
    async (i) => {
      const ev = behavior(i);
      return {
        kind: 'null key',
        spec: clicks,
        key: null,
        value: await enc(clicks, ev),
        expect: 'processed',
        eventId: ev.eventId,
      };
    },
    async (i) => {
      const tx = transaction(i);
      const value = await enc(txs, tx);
      const one: RawCase = {
        kind: 'duplicate event id',
        spec: txs,
        key: key(`hostile:c-${i % 500}`),
        value,
        expect: 'processed',
        eventId: tx.eventId,
      };
      return [one, one];
    },
    async (i) => {
      const ev = behavior(i, { type: 'ADD_TO_CART', quantity: 1 + (i % 3) });
      return {
        kind: 'ordinary',
        spec: clicks,
        key: key(`hostile:c-${i % 500}`),
        value: await enc(clicks, ev),
        expect: 'processed',
        eventId: ev.eventId,
      };
    },
    async (i) => {
      const tx = transaction(i);
      return {
        kind: 'ordinary',
        spec: txs,
        key: key(`hostile:c-${i % 500}`),
        value: await enc(txs, tx),
        expect: 'processed',
        eventId: tx.eventId,
      };
    },
  ];
  const cases: RawCase[] = [];
  // A few 1 MB strings (each a megabyte through the broker, so few): refused for size, their dead letters cut.
  for (let i = 0; i < 4; i++) {
    const ev = behavior(1_000_000 + i, { type: 'SEARCH', searchQuery: 'x'.repeat(1_000_000) });
    cases.push({
      kind: '1 MB string',
      spec: clicks,
      key: key(`hostile:c-${i}`),
      value: await enc(clicks, ev),
      expect: 'dead-letter',
    });
  }
  for (let i = 0; cases.length < count; i++) {
    const maker = makers[i % makers.length];
    if (!maker) break;
    const made = await maker(i);
    cases.push(...(Array.isArray(made) ? made : [made]).slice(0, count - cases.length));
  }
  return cases;
}

/** Where each sent record landed: `topic:partition:offset` → its case. */
async function send(run: ScratchRun, cases: readonly RawCase[]): Promise<Map<string, RawCase>> {
  const producer = createIdempotentProducer(run.kafka);
  await producer.connect();
  const where = new Map<string, RawCase>();
  try {
    // One partition per send, so each record's offset is the send's base offset plus its index.
    const groups = new Map<string, RawCase[]>();
    cases.forEach((c, i) => {
      const id = `${c.spec.name}\u0000${i % c.spec.partitions}`;
      groups.set(id, [...(groups.get(id) ?? []), c]);
    });
    for (const [id, group] of groups) {
      const [topic = '', p = '0'] = id.split('\u0000');
      const partition = Number(p);
      let chunk: RawCase[] = [];
      let bytes = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        const messages: Message[] = chunk.map((c) => ({ key: c.key, value: c.value, partition }));
        const [meta] = await producer.send({ topic, messages, acks: -1 });
        const base = Number(meta?.baseOffset ?? Number.NaN);
        chunk.forEach((c, i) => where.set(`${topic}:${partition}:${base + i}`, c));
        chunk = [];
        bytes = 0;
      };
      for (const c of group) {
        const size = (c.key?.length ?? 0) + (c.value?.length ?? 0) + 64;
        if (bytes + size > 512 * 1024) await flush();
        chunk.push(c);
        bytes += size;
      }
      await flush();
    }
  } finally {
    await producer.disconnect();
  }
  return where;
}

/** Every record of `topics` up to their current ends. */
async function readTopics(
  run: ScratchRun,
  topics: readonly string[],
): Promise<{ topic: string; partition: number; message: KafkaMessage }[]> {
  const ends = new Map<string, number>();
  for (const topic of topics) {
    for (const p of await run.admin.fetchTopicOffsets(topic)) ends.set(`${topic}:${p.partition}`, Number(p.high));
  }
  const remaining = new Set([...ends].filter(([, end]) => end > 0).map(([k]) => k));
  const out: { topic: string; partition: number; message: KafkaMessage }[] = [];
  if (remaining.size === 0) return out;
  const consumer = run.kafka.consumer({
    groupId: `${run.config.TOPIC_PREFIX}hostile-reader-${randomBytes(4).toString('hex')}`,
    maxBytesPerPartition: 4 << 20,
  });
  await consumer.connect();
  try {
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: ({ topic, partition, message }) => {
            out.push({ topic, partition, message });
            const id = `${topic}:${partition}`;
            if (Number(message.offset) + 1 >= (ends.get(id) ?? 0)) remaining.delete(id);
            if (remaining.size === 0) resolve();
            return Promise.resolve();
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

async function rows<T>(run: ScratchRun, query: string): Promise<T[]> {
  const rs = await run.clickhouse.query({ query, format: 'JSONEachRow' });
  return rs.json<T>();
}

const bump = (counts: Record<string, number>, key: string, n = 1) => {
  counts[key] = (counts[key] ?? 0) + n;
};

/** The raw-topic door through the real pipeline: per processor that reads raw topics, how every record ended. */
async function rawDoor(run: ScratchRun, count: number, problems: string[], timeoutMs: number) {
  const afterCount = 20;
  const cases = await rawCorpus(run, count - afterCount);
  const where = await send(run, cases);
  const pipeline = new Pipeline({ ...run, scoring: false });
  const doors: Record<string, DoorCounts> = {
    'raw topics → identity-resolver': emptyDoor(),
    'raw topics → warehouse-sink': emptyDoor(),
    'resolved topics → feature-processor': emptyDoor(),
  };
  let hang = false;
  await pipeline.start();
  try {
    try {
      await pipeline.waitUntilCaughtUp(run.admin, timeoutMs);
    } catch (err) {
      if (!pipeline.fatal) hang = true;
      problems.push(`raw corpus: ${String(err)}`);
    }
    // Ordinary records after the corpus: they must be processed too.
    const after = await Promise.all(
      Array.from({ length: afterCount }, async (_, i): Promise<RawCase> => {
        const ev = behavior(2_000_000 + i, { platformCustomerId: `after-${i}` });
        return {
          kind: 'after the corpus',
          spec: run.topics.clicksRaw,
          key: Buffer.from(`hostile:after-${i}`),
          value: await run.serde.encode(run.topics.clicksRaw, ev),
          expect: 'processed',
          eventId: ev.eventId,
        };
      }),
    );
    for (const [k, c] of await send(run, after)) where.set(k, c);
    if (!hang && !pipeline.fatal) {
      try {
        await pipeline.waitUntilCaughtUp(run.admin, timeoutMs);
      } catch (err) {
        if (!pipeline.fatal) hang = true;
        problems.push(`records after the corpus: ${String(err)}`);
      }
    }
  } finally {
    await pipeline.stop();
  }
  const crashed = pipeline.fatal ? 1 : 0;
  if (pipeline.fatal) problems.push(`a processor stopped: ${pipeline.fatal.message}`);

  // What each processor did with each record.
  const dlqs = run.topics.all.filter((t) => t.schema === 'deadLetter');
  const dlqSpec = dlqs[0] as TopicSpec;
  const letters = new Map<string, Map<string, DeadLetter>>(); // processor → source → letter
  for (const { message } of await readTopics(
    run,
    dlqs.map((t) => t.name),
  )) {
    const letter = await run.serde.decode<DeadLetter>(dlqSpec, message.value);
    const source = `${letter.sourceTopic}:${letter.sourcePartition}:${letter.sourceOffset}`;
    if (!letters.has(letter.processor)) letters.set(letter.processor, new Map());
    letters.get(letter.processor)?.set(source, letter);
  }
  const resolvedSources = new Set<string>();
  for (const { message } of await readTopics(run, [
    run.topics.customerClicks.name,
    run.topics.customerTransactions.name,
  ])) {
    const source = message.headers?.[SOURCE_HEADER];
    if (source) resolvedSources.add(source.toString());
  }
  const stored = new Map<string, string>();
  for (const r of await rows<{ event_id: string; q: string }>(
    run,
    'SELECT DISTINCT event_id, search_query AS q FROM fact_event',
  ))
    stored.set(r.event_id, r.q);
  for (const r of await rows<{ event_id: string }>(run, 'SELECT DISTINCT event_id FROM fact_transaction'))
    stored.set(r.event_id, '');

  const effects: Record<string, (source: string, c: RawCase) => boolean> = {
    'identity-resolver': (source) => resolvedSources.has(source),
    'warehouse-sink': (_source, c) => c.eventId !== undefined && stored.has(c.eventId),
  };
  let afterMissing = 0;
  for (const [processor, effect] of Object.entries(effects)) {
    const door = doors[`raw topics → ${processor}`] as DoorCounts;
    door.crashes = crashed;
    door.hangs = hang ? 1 : 0;
    const parked = letters.get(processor) ?? new Map<string, DeadLetter>();
    for (const [source, c] of where) {
      door.sent++;
      const letter = parked.get(source);
      const done = effect(source, c);
      if (letter) {
        door.deadLettered++;
        bump(door.byReason, `${letter.errorCode} (${c.kind})`);
      } else if (done) door.processed++;
      else {
        door.lost++;
        if (c.kind === 'after the corpus') afterMissing++;
      }
      if ((letter && c.expect === 'processed') || (!letter && done && c.expect === 'dead-letter')) door.misjudged++;
    }
  }
  const features = doors['resolved topics → feature-processor'] as DoorCounts;
  features.sent = resolvedSources.size;
  features.deadLettered = [...(letters.get('feature-processor')?.values() ?? [])].length;
  features.processed = features.sent - features.deadLettered; // its group has committed every record (caught up)
  features.crashes = crashed;
  features.hangs = hang ? 1 : 0;

  // Strings: what ClickHouse holds must be what was sent.
  let checked = 0;
  let altered = 0;
  for (const c of where.values()) {
    if (c.searchQuery === undefined || c.eventId === undefined) continue;
    checked++;
    const got = stored.get(c.eventId);
    if (got !== c.searchQuery) {
      altered++;
      if (altered <= 3)
        problems.push(`${c.eventId}: sent ${JSON.stringify(c.searchQuery)}, stored ${JSON.stringify(got)}`);
    }
  }
  return { doors, stringsChecked: checked, stringsAltered: altered, afterMissing };
}

/** Lines of the two command-line input formats, with what each must become. */
export function hostileFiles(lines: number): {
  febrl: Buffer;
  retail: Buffer;
  expected: { febrl: Expected; retail: Expected };
} {
  const febrl: Buffer[] = [
    Buffer.from(
      '\uFEFFrec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id\r\n',
    ),
  ];
  const retail: Buffer[] = [
    Buffer.from('\uFEFFInvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n'),
  ];
  const expected = { febrl: newExpected(), retail: newExpected() };
  const half = Math.floor(lines / 2);
  for (let i = 0; i < half; i++) {
    const eol = i % 2 ? '\r\n' : '\n';
    const name = (SQL_STRINGS[i % SQL_STRINGS.length] ?? '').replace(/[\r\n"]/g, ' ');
    switch (i % 8) {
      case 0:
        febrl.push(
          Buffer.from(`rec-${i}-org, "bob" jr, smith, 1, high st, , town, 2000, nsw, 19800101, 1234567${eol}`),
        );
        bump(expected.febrl.bad, 'malformed quoting');
        break;
      case 1:
        febrl.push(Buffer.from(`rec-${i}-org, ann, lee, 2, low st${eol}`));
        bump(expected.febrl.bad, 'wrong column count');
        break;
      case 2:
        febrl.push(
          Buffer.concat([
            Buffer.from(`rec-${i}-org, Jos`),
            Buffer.from([0xe9]), // Latin-1 é
            Buffer.from(`, m, 3, a st, , b, 2000, nsw, 19800101, 1234567${eol}`),
          ]),
        );
        bump(expected.febrl.bad, 'not UTF-8');
        break;
      case 3:
        febrl.push(Buffer.from(eol === '\n' ? '\n' : '  \r\n'));
        expected.febrl.blank++;
        break;
      default:
        febrl.push(
          Buffer.from(
            `rec-${i}-org, "${name}", ${UNICODE_STRINGS[i % UNICODE_STRINGS.length] ?? ''}, 4, main st, , city, 2600, act, 19700101, 7654321${eol}`,
          ),
        );
        expected.febrl.records++;
    }
  }
  for (let i = 0; i < lines - half; i++) {
    const eol = i % 2 ? '\r\n' : '\n';
    const minute = String(i % 60).padStart(2, '0');
    const hour = String(8 + (Math.floor(i / 60) % 10)).padStart(2, '0');
    const date = `2010-12-0${1 + (Math.floor(i / 600) % 9)} ${hour}:${minute}:00`;
    switch (i % 9) {
      case 0:
        retail.push(Buffer.from(`5${i},85123A,"ASSORTED "BIRD" ORNAMENT,6,${date},2.55,17850.0,United Kingdom${eol}`));
        bump(expected.retail.bad, 'malformed quoting');
        break;
      case 1:
        retail.push(Buffer.from(`5${i},85123A,TOO,MANY,COLUMNS,6,${date},2.55,17850.0,United Kingdom${eol}`));
        bump(expected.retail.bad, 'wrong column count');
        break;
      case 2:
        retail.push(
          Buffer.concat([
            Buffer.from(`5${i},85123A,CAF`),
            Buffer.from([0xc9]),
            Buffer.from(` MUG,6,${date},2.55,17850.0,United Kingdom${eol}`),
          ]),
        );
        bump(expected.retail.bad, 'not UTF-8');
        break;
      case 3:
        retail.push(Buffer.from(`5${i},85123A,MUG,six,${date},2.55,17850.0,United Kingdom${eol}`));
        bump(expected.retail.bad, 'unreadable value');
        break;
      case 4:
        retail.push(Buffer.from(eol));
        expected.retail.blank++;
        break;
      default:
        retail.push(
          Buffer.from(
            `5${i},85123A,"${(SQL_STRINGS[i % SQL_STRINGS.length] ?? '').replace(/"/g, '""').replace(/[\r\n]/g, ' ')}",6,${date},2.55,17850.0,United Kingdom${eol}`,
          ),
        );
        expected.retail.records++;
    }
  }
  return { febrl: Buffer.concat(febrl), retail: Buffer.concat(retail), expected };
}

interface Expected {
  records: number;
  blank: number;
  bad: Record<string, number>;
}
const newExpected = (): Expected => ({ records: 0, blank: 0, bad: {} });

/** The reason class of a reported line (the report's own sentence names the detail). */
export function lineReasonClass(reason: string): string {
  if (/quote/i.test(reason)) return 'malformed quoting';
  if (/fields, the header has|not one record/.test(reason)) return 'wrong column count';
  if (/not UTF-8/.test(reason)) return 'not UTF-8';
  return 'unreadable value';
}

/** The command-line door: the readers of identity:eval / identity:train (FEBRL) and replay (both formats). */
async function filesDoor(lines: number, problems: string[]): Promise<Record<string, DoorCounts>> {
  const dir = await mkdtemp(join(tmpdir(), 'hostile-'));
  const { febrl, retail, expected } = hostileFiles(lines);
  const doors: Record<string, DoorCounts> = {};
  try {
    const check = (
      name: string,
      exp: Expected,
      sent: number,
      records: number,
      blank: number,
      bad: readonly BadLine[],
    ) => {
      const door = emptyDoor();
      door.sent = sent;
      door.processed = records;
      door.deadLettered = bad.length;
      door.skipped = blank;
      for (const b of bad) bump(door.byReason, lineReasonClass(b.reason));
      door.lost = sent - records - blank - bad.length;
      const want = JSON.stringify(Object.entries(exp.bad).sort());
      const got = JSON.stringify(Object.entries(door.byReason).sort());
      if (records !== exp.records || blank !== exp.blank || want !== got) {
        door.misjudged = Math.abs(records - exp.records) + Math.abs(blank - exp.blank);
        problems.push(
          `${name}: ${records} records, ${blank} blank, bad ${got}; expected ${exp.records}, ${exp.blank}, ${want}`,
        );
      }
      if (bad.some((b) => !(b.line > 1) || !b.reason))
        problems.push(`${name}: a bad line without its number or reason`);
      doors[name] = door;
    };
    const febrlPath = join(dir, 'people.csv');
    await writeFile(febrlPath, febrl);
    const febrlBad: BadLine[] = [];
    let febrlCounts = { lines: 0, records: 0, blank: 0, bad: 0 };
    const records = await readFebrlFile(
      febrlPath,
      (b) => febrlBad.push(b),
      (c) => {
        febrlCounts = { ...c };
      },
    );
    check(
      'FEBRL file (identity:eval, identity:train, replay febrl)',
      expected.febrl,
      febrlCounts.lines - 1,
      records.length,
      febrlCounts.blank,
      febrlBad,
    );

    const retailBad: BadLine[] = [];
    const { transactions, counts } = onlineRetailFile([retail], {
      file: 'online-retail.csv',
      onBadLine: (b) => retailBad.push(b),
    });
    let lineItems = 0;
    for await (const tx of transactions) lineItems += tx.lineItems.length;
    check(
      'Online Retail file (replay online-retail)',
      expected.retail,
      counts.lines - 1,
      lineItems,
      counts.blank,
      retailBad,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return doors;
}

/** The API door: hostile requests against the API built by its factory; each must get its 4xx, never a 5xx. */
async function apiDoor(run: ScratchRun, requests: number, problems: string[]): Promise<DoorCounts> {
  const door = emptyDoor();
  const app = new ApiApp({
    config: run.config,
    kafka: run.kafka,
    serde: run.serde,
    topics: run.topics,
    log: createLogger('error', { part: 'api' }),
    metrics: createMetrics(),
  });
  const url = await app.start();
  const key = run.config.API_KEYS[0]?.reveal() ?? '';
  const json = { 'content-type': 'application/json' };
  const auth = { ...json, authorization: `Bearer ${key}` };
  const big = JSON.stringify({ customer_id: 'x'.repeat(1_500_000) });
  const kinds: { kind: string; status: number; path: string; headers: Record<string, string>; body: string }[] = [
    { kind: 'oversized body', status: 413, path: '/predict-intent', headers: auth, body: big },
    { kind: 'malformed JSON', status: 400, path: '/predict-intent', headers: auth, body: '{"customer_id": ' },
    { kind: 'missing key', status: 401, path: '/predict-intent', headers: json, body: '{"customer_id":"c"}' },
    {
      kind: 'wrong key',
      status: 401,
      path: '/predict-intent',
      headers: { ...json, authorization: 'Bearer not-a-key' },
      body: '{"customer_id":"c"}',
    },
    { kind: 'wrong type', status: 400, path: '/predict-intent', headers: auth, body: '{"customer_id":123}' },
    {
      kind: 'wrong type in batch',
      status: 400,
      path: '/predict-intent/batch',
      headers: auth,
      body: '{"customers":"all"}',
    },
    { kind: 'JSON null', status: 400, path: '/ad-decision', headers: auth, body: 'null' },
    {
      kind: 'XML body',
      status: 415,
      path: '/predict-intent',
      headers: { 'content-type': 'application/xml', authorization: `Bearer ${key}` },
      body: '<customer_id>c</customer_id>',
    },
    {
      kind: 'text/plain body', // fastify parses text/plain; the schema then refuses a string
      status: 400,
      path: '/predict-intent',
      headers: { 'content-type': 'text/plain', authorization: `Bearer ${key}` },
      body: 'hello',
    },
    {
      kind: 'unknown customer (SQL-looking id)',
      status: 404,
      path: '/predict-intent',
      headers: auth,
      body: JSON.stringify({ customer_id: SQL_STRINGS[0] }),
    },
    {
      kind: 'unicode platform id',
      status: 404,
      path: '/predict-intent',
      headers: auth,
      body: JSON.stringify({ platform: 'ü\u202E', platform_customer_id: '👩‍👩‍👧' }),
    },
  ];
  try {
    for (let i = 0; i < requests; i++) {
      const k = kinds[i % kinds.length] as (typeof kinds)[number];
      door.sent++;
      let status: number;
      try {
        const res = await fetch(`${url}${k.path}`, {
          method: 'POST',
          headers: k.headers,
          body: k.body,
          signal: AbortSignal.timeout(30_000),
        });
        status = res.status;
        await res.arrayBuffer();
      } catch (err) {
        door.hangs++;
        problems.push(`API ${k.kind}: ${String(err)}`);
        continue;
      }
      if (status >= 500) door.crashes++;
      if (status < 300) door.processed++;
      else {
        door.deadLettered++;
        bump(door.byReason, `${status} (${k.kind})`);
      }
      if (status !== k.status) {
        door.misjudged++;
        if (door.misjudged <= 5) problems.push(`API ${k.kind}: HTTP ${status}, expected ${k.status}`);
      }
    }
  } finally {
    await app.stop();
  }
  return door;
}

export interface HostileOptions {
  readonly sizes?: HostileSizes;
  /** Use these endpoints (tests); default: the configured stack (started when nothing is configured). */
  readonly endpoints?: StackEndpoints;
  /** How long the pipeline may take to catch up before it counts as a hang. @default 300_000 */
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

/** Runs the corpus through every door on a scratch run (removed afterwards) and counts what became of each record. */
export async function runHostile(options: HostileOptions = {}): Promise<HostileReport> {
  const sizes = options.sizes ?? DEFAULT_SIZES;
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const problems: string[] = [];
  const run = await openScratchRun('hostile', {
    warehouse: true,
    env: { SINK_MAX_WAIT_MS: '200', API_PORT: '0', DASHBOARDS_ENABLED: 'false' },
    ...(options.endpoints ? { endpoints: options.endpoints } : {}),
  });
  try {
    log(`raw topics: ${sizes.raw} records through the resolver, the feature processor and the warehouse sink`);
    const raw = await rawDoor(run, sizes.raw, problems, options.timeoutMs ?? 300_000);
    log(`command-line files: ${sizes.files} lines`);
    const files = await filesDoor(sizes.files, problems);
    log(`API: ${sizes.api} requests`);
    const api = await apiDoor(run, sizes.api, problems);
    const doors = { ...raw.doors, ...files, 'prediction API': api };
    for (const [name, d] of Object.entries(doors)) {
      if (d.lost > 0) problems.push(`${name}: ${d.lost} records lost`);
      if (d.misjudged > 0) problems.push(`${name}: ${d.misjudged} records misjudged`);
      if (d.crashes > 0) problems.push(`${name}: ${d.crashes} crashes`);
      if (d.hangs > 0) problems.push(`${name}: ${d.hangs} hangs`);
    }
    if (raw.stringsAltered > 0)
      problems.push(`${raw.stringsAltered} of ${raw.stringsChecked} strings stored differently from what was sent`);
    if (raw.afterMissing > 0) problems.push(`${raw.afterMissing} ordinary records after the corpus not processed`);
    return {
      doors,
      stringsChecked: raw.stringsChecked,
      stringsAltered: raw.stringsAltered,
      afterCorpusMissing: raw.afterMissing,
      seconds: (Date.now() - started) / 1000,
      problems,
    };
  } finally {
    await run.dispose();
  }
}

/** The report as the lines `npm run hostile` prints. */
export function formatReport(report: HostileReport): string[] {
  const out: string[] = [];
  for (const [name, d] of Object.entries(report.doors)) {
    out.push(name);
    out.push(
      `  sent ${d.sent}, processed ${d.processed}, refused ${d.deadLettered}, blank ${d.skipped}, lost ${d.lost}, misjudged ${d.misjudged}, crashes ${d.crashes}, hangs ${d.hangs}`,
    );
    for (const [reason, n] of Object.entries(d.byReason).sort(([a], [b]) => a.localeCompare(b)))
      out.push(`    ${String(n).padStart(6)}  ${reason}`);
  }
  out.push(
    `strings stored exactly as sent: ${report.stringsChecked - report.stringsAltered} of ${report.stringsChecked}`,
  );
  out.push(`ordinary records after the corpus not processed: ${report.afterCorpusMissing}`);
  out.push(
    report.problems.length === 0 ? 'every record accounted for' : `PROBLEMS:\n  ${report.problems.join('\n  ')}`,
  );
  return out;
}

/** A digest of the corpus generator's strings, so a report can say which corpus it ran (stable across runs). */
export const corpusVersion = createHash('sha256')
  .update(JSON.stringify([SQL_STRINGS, UNICODE_STRINGS]))
  .digest('hex')
  .slice(0, 12);

/**
 * `npm run bench -- identity-messy`: the messy person-record benchmark (processors/identity/messy-logic.ts: ~5,000
 * people written 3–21 times each with nicknames, typos, swapped names, missing fields, perturbed birth dates, made-up
 * postcodes, households and common names; no identifier) through the real identity resolver, against a kafkajs
 * consumer that only decodes the same records (the raw limit) and against the same records, model and judging on a
 * graph held in process (resolve-offline.ts: what the rules cost without Redis and Kafka), both in the same run.
 *
 * BENCH_MESSY_PEOPLE (default 5000) and BENCH_MESSY_SEED (default 1) choose the file; it is written to a temporary
 * directory and removed afterwards.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateFiles } from '../../processors/identity/eval-cli.js';
import { generateMessy, messyCsv } from '../../processors/identity/messy-logic.js';

/** Splink 5.0 on the 50,000-record messy file (issue 15): a comparable file, not this one. */
const SPLINK_REFERENCE = { f1: 0.851, precision: 0.966, recall: 0.761 };

function positiveInt(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

export async function identityMessyBench(): Promise<Record<string, unknown>> {
  const people = positiveInt('BENCH_MESSY_PEOPLE', 5_000);
  const seed = positiveInt('BENCH_MESSY_SEED', 1);
  const dataset = generateMessy({ people, seed });
  const dir = mkdtempSync(join(tmpdir(), 'identity-messy-'));
  const file = join(dir, 'messy.csv');
  try {
    writeFileSync(file, messyCsv(dataset));
    console.log(
      `messy benchmark   seed ${seed}: ${dataset.rows.length} records of ${dataset.people} people ` +
        `(${dataset.households} households, largest true cluster ${dataset.largestCluster})`,
    );
    const result = await evaluateFiles([file], {
      measureRawConsumer: true,
      measureInMemory: true,
      progress: process.stderr.isTTY,
    });
    const raw = result.rawDecodePerSecond ?? 0;
    const ratio = Number((result.recordsPerSecond / Math.max(raw, 1)).toFixed(3));
    const m = result.metrics ?? {};
    console.log(
      `identity resolver  ${result.recordsPerSecond} records/s, ${result.cpuMicrosPerRecord} µs of process CPU per record`,
    );
    console.log(`decode-only        ${raw} records/s (same topic, same run: the raw limit)`);
    console.log(`ratio              ${ratio}`);
    const inMemory = result.inMemory;
    const inMemoryRatio = inMemory ? Number((result.recordsPerSecond / inMemory.recordsPerSecond).toFixed(3)) : null;
    console.log(
      `in-memory rules    ${inMemory?.recordsPerSecond} records/s, F1 ${inMemory?.f1} (the same records, model and ` +
        `judging on a graph held in process, same run: no Redis, no Kafka); stream / in-memory ${inMemoryRatio}`,
    );
    console.log(
      `quality            precision ${m['precision']}  recall ${m['recall']}  F1 ${m['f1']}  ` +
        `blocking recall ${m['blockingRecall']}`,
    );
    console.log(`largest cluster    ${result.largestCluster} (largest true cluster ${dataset.largestCluster})`);
    console.log(`merges published   ${result.mergesPublished} (clusters of people already published, joined)`);
    console.log(
      `reference          Splink 5.0 on the issue's comparable file: F1 ${SPLINK_REFERENCE.f1} ` +
        `(precision ${SPLINK_REFERENCE.precision}, recall ${SPLINK_REFERENCE.recall})`,
    );
    return {
      bench: 'identity-messy',
      seed,
      people: dataset.people,
      records: result.records,
      precision: m['precision'] ?? null,
      recall: m['recall'] ?? null,
      f1: m['f1'] ?? null,
      blockingRecall: m['blockingRecall'] ?? null,
      largestCluster: result.largestCluster,
      largestTrueCluster: dataset.largestCluster,
      resolverRecordsPerSecond: result.recordsPerSecond,
      resolverCpuMicrosPerRecord: result.cpuMicrosPerRecord,
      mergesPublished: result.mergesPublished,
      decodeOnlyRecordsPerSecond: raw,
      ratio,
      inMemoryRecordsPerSecond: inMemory?.recordsPerSecond ?? null,
      inMemoryF1: inMemory?.f1 ?? null,
      inMemoryRatio,
      goalF1: 0.9,
      goalRecordsPerSecond: 5_000,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

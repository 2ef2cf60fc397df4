import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The Avro contracts in schemas/avro, by short name. The .avsc files are the source of truth. */
export const schemaFiles = {
  transaction: 'transaction.avsc',
  behaviorEvent: 'behavior-event.avsc',
  identityLink: 'identity-link.avsc',
  identityMerge: 'identity-merge.avsc',
  identityMergeRejection: 'identity-merge-rejection.avsc',
  intentScore: 'intent-score.avsc',
  deadLetter: 'dead-letter.avsc',
  featureHandoff: 'feature-handoff.avsc',
  adDecision: 'ad-decision.avsc',
  customerErasure: 'customer-erasure.avsc',
} as const;

export type SchemaName = keyof typeof schemaFiles;

/** Avro schema JSON as stored in schemas/avro (the shape avsc and the registry accept). */
export type AvroSchema = Readonly<Record<string, unknown>> & { readonly name: string; readonly type: string };

const avroDir = fileURLToPath(new URL('./avro/', import.meta.url));

/** Reads and parses one contract; throws if the file is missing or not JSON. */
export function loadSchema(name: SchemaName): AvroSchema {
  return JSON.parse(readFileSync(avroDir + schemaFiles[name], 'utf8')) as AvroSchema;
}

/** Reads an experiment declaration file (EXPERIMENTS_PATH) and validates it (definitions.ts). */
import { readFileSync } from 'node:fs';
import { AppError } from '../runtime/errors.js';
import { parseExperiments, type Experiment } from './definitions.js';

/** The experiments a file declares; CONFIG_INVALID naming every problem when it cannot be read or is invalid. */
export function loadExperiments(path: string): readonly Experiment[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `experiments ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseExperiments(doc, `experiments ${path}`);
}

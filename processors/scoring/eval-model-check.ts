/**
 * Which model `npm run eval -- online-retail` may score Online Retail with (issue 13): one whose manifest says it was
 * trained on Online Retail, with labels that end before the evaluated days. Light (no onnxruntime) so the check runs
 * before minutes of replay and is unit-tested on its own.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DAY_MS } from '../features/definitions.js';
import { AppError } from '../runtime/errors.js';

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** What `npm run train -- --data-source` records for a model trained by this evaluation (training_data.dataset). */
export const ONLINE_RETAIL_DATASET = 'online-retail';

/**
 * Why model `version` must not be evaluated on Online Retail from `fromMs` on, or null when it may: its manifest must
 * say it was trained on Online Retail (training_data.dataset, written by `npm run train -- --data-source`), and its
 * labels must end by `fromMs` (a model whose training labels reach into the evaluated days has seen them).
 */
export function onlineRetailModelProblem(manifest: unknown, version: string, fromMs: number): string | null {
  const data = (manifest as { training_data?: Record<string, unknown> } | null)?.training_data;
  const dataset = data?.['dataset'];
  if (dataset !== ONLINE_RETAIL_DATASET) {
    const source = typeof data?.['source'] === 'string' ? `; its source: ${data['source']}` : '';
    const said =
      typeof dataset === 'string' ? `was trained on "${dataset}"` : 'does not say it was trained on Online Retail';
    return `the current model ${version} ${said} (training_data.dataset${source})`;
  }
  const toMs = data?.['to_ms'];
  const label = (manifest as { label?: { horizon_days?: unknown } }).label?.horizon_days;
  if (typeof toMs !== 'number' || typeof label !== 'number') {
    return `the current model ${version}'s manifest lacks training_data.to_ms or label.horizon_days`;
  }
  const labelsEnd = toMs + label * DAY_MS;
  if (labelsEnd > fromMs) {
    return (
      `the current model ${version} was trained on Online Retail labels up to ${iso(labelsEnd)}, past --from ` +
      `${iso(fromMs)}: it has seen the days it would be evaluated on`
    );
  }
  return null;
}

/** Reads `<modelDir>/<version>/feature-manifest.json` and applies {@link onlineRetailModelProblem}. */
export async function checkModelForOnlineRetail(modelDir: string, version: string, fromMs: number): Promise<void> {
  let manifest: unknown;
  try {
    manifest = JSON.parse(await readFile(join(modelDir, version, 'feature-manifest.json'), 'utf8'));
  } catch (err) {
    manifest = null;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
  }
  const problem =
    manifest === null
      ? `the current model ${version} has no readable feature-manifest.json in ${modelDir}`
      : onlineRetailModelProblem(manifest, version, fromMs);
  if (problem) {
    throw new AppError(
      'MODEL_CONTRACT',
      `refusing to evaluate: ${problem}. Scoring Online Retail with it would not measure a model of this data. ` +
        "Add --train to train one on the file's history before --from (the promotion gate then decides whether it " +
        `replaces the current one), or point MODEL_DIR at a registry whose current model was trained that way.`,
    );
  }
}

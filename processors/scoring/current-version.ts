/** The model registry's `current` pointer, readable without loading onnxruntime (the retrainer, the dashboards). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The version `<MODEL_DIR>/current` names, or null when no model was promoted yet. */
export async function currentVersion(modelDir: string): Promise<string | null> {
  try {
    const text = (await readFile(join(modelDir, 'current'), 'utf8')).trim();
    return text.length > 0 ? text : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

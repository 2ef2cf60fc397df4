// training/ (Python) as part of `npm test`: builds the pinned venv if needed, runs its pytest suite against the real
// ClickHouse (model_registry, warehouse window), then loads the model that suite trained with onnxruntime-node, the
// scorer's runtime, and checks the feature contract and the stored parity sample. Nothing is skipped quietly: a venv
// that cannot be built or a ClickHouse that is not there fails this file with the reason.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FEATURE_NAMES } from '../../processors/features/definitions.js';
import { LoadedModel } from '../../processors/scoring/model.js';

const ROOT = join(import.meta.dirname, '..', '..');
const TRAINING = join(ROOT, 'training');

interface Manifest {
  model_version: string;
  model_file: string;
  features: { index: number; name: string; dtype: string; kind: string }[];
  calibration: { points: [number, number][] };
}

interface ParitySample {
  model_version: string;
  tolerance: number;
  features: number[][];
  probabilities: number[];
}

function output(result: ReturnType<typeof spawnSync>): string {
  return `${String(result.stdout)}\n${String(result.stderr)}${result.error ? `\n${result.error.message}` : ''}`;
}

let python = '';
let keep = '';
beforeAll(() => {
  const setup = spawnSync(process.execPath, [join(TRAINING, 'setup.mjs')], { encoding: 'utf8', timeout: 600_000 });
  expect(setup.status, `training venv could not be built:\n${output(setup)}`).toBe(0);
  python = setup.stdout.trim();
  keep = mkdtempSync(join(tmpdir(), 'patternos-training-'));
}, 600_000);

afterAll(() => {
  if (keep) rmSync(keep, { recursive: true, force: true });
});

describe('training (Python)', () => {
  it('passes its pytest suite, ClickHouse included', () => {
    const result = spawnSync(python, ['-m', 'pytest', '-q'], {
      cwd: TRAINING,
      encoding: 'utf8',
      timeout: 180_000,
      env: {
        ...process.env,
        CLICKHOUSE_URL: inject('endpoints').clickhouseUrl,
        PATTERNOS_TEST_CLICKHOUSE: 'required',
        PATTERNOS_TEST_KEEP_MODELS: keep,
      },
    });
    expect(result.status, `pytest failed:\n${output(result)}`).toBe(0);
    expect(result.stdout, 'pytest skipped something').not.toMatch(/\bskipped\b/);
  }, 200_000);

  it("exports a model the scorer (onnxruntime-node) loads with the manifest contract, giving Python's probabilities", async () => {
    const version = readFileSync(join(keep, 'current'), 'utf8').trim();
    const dir = join(keep, version);
    const manifest = JSON.parse(readFileSync(join(dir, 'feature-manifest.json'), 'utf8')) as Manifest;
    expect(manifest.model_version).toBe(version);
    expect(manifest.features.map((f) => f.name)).toEqual([...FEATURE_NAMES]);
    expect(manifest.features.every((f, i) => f.index === i && f.dtype === 'float32')).toBe(true);

    // Through the scorer's own loader (processors/scoring/model.ts), as served.
    const model = await LoadedModel.load(keep, version);
    try {
      expect(model.features).toEqual([...FEATURE_NAMES]);
      const sample = JSON.parse(readFileSync(join(dir, 'parity-sample.json'), 'utf8')) as ParitySample;
      const probabilities = await model.predict(Float32Array.from(sample.features.flat()));
      expect(probabilities.length).toBe(sample.features.length);
      const worst = Math.max(...[...probabilities].map((p, row) => Math.abs(p - (sample.probabilities[row] ?? NaN))));
      expect(worst).toBeLessThanOrEqual(sample.tolerance);
    } finally {
      await model.close();
    }
  });
});

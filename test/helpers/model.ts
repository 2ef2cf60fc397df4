/**
 * A real intent model for tests that score: training/ fits it on its synthetic fixture set and writes it into a model
 * registry directory of the test's own, as `npm run train` would.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** Trains `version` into `modelsDir` (and makes it current). Takes tens of seconds: call it from beforeAll. */
export function trainSyntheticModel(modelsDir: string, version: string, customers = 500): void {
  const setup = spawnSync(process.execPath, [join(ROOT, 'training', 'setup.mjs')], { encoding: 'utf8' });
  expect(setup.status, `training venv:\n${setup.stderr}`).toBe(0);
  const python = setup.stdout.trim();
  const csv = join(modelsDir, 'synthetic.csv');
  const fixture = spawnSync(
    python,
    ['-m', 'tests.synthetic', '--customers', String(customers), '--days', '60', '--out', csv],
    { cwd: join(ROOT, 'training'), encoding: 'utf8' },
  );
  expect(fixture.status, fixture.stderr).toBe(0);
  const train = spawnSync(
    process.execPath,
    [
      join(ROOT, 'training', 'train.mjs'),
      '--csv',
      csv,
      '--no-clickhouse',
      '--models-dir',
      modelsDir,
      '--version',
      version,
    ],
    { encoding: 'utf8', env: { ...process.env, MODEL_DIR: modelsDir } },
  );
  expect(train.status, `training:\n${train.stdout}\n${train.stderr}`).toBe(0);
  expect(readFileSync(join(modelsDir, 'current'), 'utf8').trim()).toBe(version);
}

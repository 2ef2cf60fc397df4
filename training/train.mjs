// `npm run train -- <args>`: makes sure the training venv is current (training/setup.mjs), then runs
// `python -m patternos_training train <args>` from the repo root. `npm run train -- status` and
// `npm run train -- promote <version> --reason <text>` reach the package's other subcommands, and
// `npm run train -- ceiling <online_retail.csv.gz>` estimates what Online Retail allows (patternos_training/ceiling.py).
import { spawnSync } from 'node:child_process';
import { delimiter } from 'node:path';
import { ensureTrainingVenv, REPO_ROOT, TRAINING_DIR } from './setup.mjs';

const SUBCOMMANDS = new Set(['train', 'status', 'promote', 'ceiling', 'compare']);

let python;
try {
  python = await ensureTrainingVenv();
} catch (err) {
  process.stderr.write(`[train] error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
const args = process.argv.slice(2);
const command = SUBCOMMANDS.has(args[0] ?? '') ? args : ['train', ...args];
const pythonPath = [TRAINING_DIR, process.env['PYTHONPATH']].filter(Boolean).join(delimiter);
const child = spawnSync(python, ['-m', 'patternos_training', ...command], {
  cwd: REPO_ROOT,
  stdio: 'inherit',
  env: { ...process.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' },
});
if (child.error) {
  process.stderr.write(`[train] cannot run ${python}: ${child.error.message}\n`);
  process.exit(1);
}
process.exit(child.status ?? 1); // a signal-killed child has no status: still a failure

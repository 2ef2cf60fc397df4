// Creates the project-owned Python environment of training/ (`.venv/training`, or TRAINING_VENV) from the pinned
// training/requirements.txt. Idempotent and fast when nothing changed: a stamp file holds the sha256 of the
// requirements plus the interpreter it was built with, and a matching stamp means "done". Anything else (no venv, an
// edited requirements file, another Python, a build that died halfway and so never wrote its stamp) rebuilds the venv
// from scratch, so it never carries packages that the requirements no longer name.
//
//   node training/setup.mjs            (npm run train:setup)  prints the venv's python path on stdout
//   import { ensureTrainingVenv } from './setup.mjs'           used by training/train.mjs
//
// Plain Node, no npm dependencies, so it works before `npm ci`. PYTHON picks the interpreter (default python3, >= 3.10).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TRAINING_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = dirname(TRAINING_DIR);
const REQUIREMENTS = join(TRAINING_DIR, 'requirements.txt');
const LOCK_WAIT_MS = 15 * 60_000; // a cold install takes well under a minute; this only bounds a wedged peer

/** Where the venv lives; TRAINING_VENV moves it (relative paths are taken from the repo root). */
export function venvDir() {
  const configured = process.env['TRAINING_VENV'];
  return configured ? resolve(REPO_ROOT, configured) : join(REPO_ROOT, '.venv', 'training');
}

/** The venv's interpreter. */
export function venvPython(dir = venvDir()) {
  return process.platform === 'win32' ? join(dir, 'Scripts', 'python.exe') : join(dir, 'bin', 'python');
}

const log = (line) => process.stderr.write(`[training-setup] ${line}\n`);

/** `<version> <executable>` of the base interpreter, or a clear error when it is missing or too old. */
function baseInterpreter() {
  const python = process.env['PYTHON'] || 'python3';
  const probe = spawnSync(python, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3], sys.executable)'], {
    encoding: 'utf8',
  });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `cannot run ${python} (${probe.error?.message ?? probe.stderr.trim()}): training/ needs Python >= 3.10; ` +
        'install it or point PYTHON at one',
    );
  }
  const [version = '', executable = ''] = probe.stdout.trim().split(' ');
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < 3 || (major === 3 && minor < 10)) {
    throw new Error(`${executable} is Python ${version}; training/ needs Python >= 3.10 (set PYTHON to another one)`);
  }
  return { python, version, executable };
}

function stampOf(interpreter) {
  const hash = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex');
  return `${hash} python ${interpreter.version} ${interpreter.executable}\n`;
}

/**
 * Serialises builds of one venv across processes (an `npm test` and an `npm run train` started together): mkdir is
 * atomic, and a lock whose owner pid is gone is taken over.
 */
async function withLock(dir, fn) {
  const lock = `${dir}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      if (!ownerAlive(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (another setup is running)`);
      await new Promise((wake) => setTimeout(wake, 500));
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function ownerAlive(lock) {
  let pid;
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    return true; // created but pid not written yet: its owner is alive right now
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function run(command, args) {
  execFileSync(command, args, { stdio: ['ignore', process.stderr, process.stderr] });
}

function build(dir, interpreter, stamp) {
  const started = Date.now();
  log(`building ${dir} with Python ${interpreter.version} from training/requirements.txt…`);
  rmSync(dir, { recursive: true, force: true });
  try {
    run(interpreter.python, ['-m', 'venv', dir]);
  } catch (err) {
    throw new Error(`python -m venv failed (${err.message}); on Debian/Ubuntu install the python3-venv package`);
  }
  const python = venvPython(dir);
  const pip = ['-m', 'pip', '--disable-pip-version-check', '--no-input'];
  // --no-deps: the requirements pin the whole closure, `pip check` proves it is complete and consistent.
  run(python, [...pip, 'install', '--quiet', '--only-binary=:all:', '--no-deps', '-r', REQUIREMENTS]);
  run(python, [...pip, 'check']);
  run(python, ['-c', 'import xgboost, lightgbm, sklearn, onnx, onnxmltools, onnxruntime']);
  writeFileSync(join(dir, '.requirements.sha256'), stamp); // last: only a complete build is ever "done"
  log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** Makes sure the venv matches requirements.txt; returns its python. */
export async function ensureTrainingVenv() {
  const dir = venvDir();
  const interpreter = baseInterpreter();
  const stamp = stampOf(interpreter);
  const stampFile = join(dir, '.requirements.sha256');
  const current = () => existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp;
  if (!current()) {
    await withLock(dir, () => {
      if (!current()) build(dir, interpreter, stamp); // a peer may have built it while we waited
    });
  }
  return venvPython(dir);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.stdout.write(`${await ensureTrainingVenv()}\n`);
  } catch (err) {
    log(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}

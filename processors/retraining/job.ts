/**
 * One retraining (`npm run retrain`, and the retrainer's scheduled and alert-started runs): the last RETRAIN_MONTHS of
 * reference dates the warehouse can label → `npm run train` (training set from ClickHouse, XGBoost/LightGBM, ONNX,
 * the promotion gate, the registry) → the outcome checked against MODEL_DIR and recorded in its retrain-status.json.
 *
 * One run at a time across processes: the whole run holds MODEL_DIR/.retrain.lock (proper-lockfile: a lock whose
 * holder died goes stale and is taken over). Promotion itself is training/'s: the version directory is renamed into
 * place whole, registry.json is the decision record and `current` moves last, atomically, so a run that fails or is
 * stopped at any point leaves the served model as it was (at worst registry.json already names a model that passed
 * the gate and `current` lags it; the next run repairs the pointer, and the outcome here says so).
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import lockfile from 'proper-lockfile';
import type { Config } from '../runtime/config.js';
import {
  EMPTY_STATUS,
  parseStatus,
  parseTrainSummary,
  recordRun,
  retrainVersion,
  trainingWindow,
  type AucPair,
  type RetrainAlert,
  type RetrainRun,
  type RetrainStatus,
  type RetrainTrigger,
  type TrainingWindow,
} from './logic.js';
import { currentVersion } from '../scoring/current-version.js';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const TRAIN_SCRIPT = join(REPO_ROOT, 'training', 'train.mjs');
export const STATUS_FILE = 'retrain-status.json';
const LOCK_FILE = '.retrain.lock';
/** The label horizon of the served models (the seed's "purchase within 7 days"). */
const HORIZON_DAYS = 7;
/** After the timeout, the training's process group gets SIGTERM, then SIGKILL this much later. */
const KILL_GRACE_MS = 10_000;

/** Another process holds the retrain lock: not a failure, nothing was attempted. */
export class RetrainBusyError extends Error {
  constructor(modelDir: string) {
    super(`another retraining holds ${join(modelDir, LOCK_FILE)}; one run at a time`);
    this.name = 'RetrainBusyError';
  }
}

export interface RetrainOptions {
  readonly config: Config;
  readonly clickhouse: ClickHouseClient;
  readonly trigger: RetrainTrigger;
  readonly alert?: RetrainAlert | null;
  /** @default config.RETRAIN_MONTHS */
  readonly months?: number;
  /** @default config.RETRAIN_STEP_DAYS */
  readonly stepDays?: number;
  /** @default config.RETRAIN_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** Stops a running training (its whole process group); the run is recorded as failed. */
  readonly signal?: AbortSignal;
  /** Each line the training prints on stderr (progress, then errors). */
  readonly progress?: (line: string) => void;
  /** @default Date.now */
  readonly now?: () => number;
}

export { currentVersion };

export async function readStatus(modelDir: string): Promise<RetrainStatus> {
  try {
    return parseStatus(await readFile(join(modelDir, STATUS_FILE), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_STATUS;
    throw new Error(`${join(modelDir, STATUS_FILE)}: ${String(err)}`, { cause: err });
  }
}

async function writeStatus(modelDir: string, status: RetrainStatus): Promise<void> {
  const path = join(modelDir, STATUS_FILE);
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(status, null, 2)}\n`);
  await rename(temp, path); // readers (the retrainer's /metrics) see the old or the new record, never half of one
}

async function warehouseWindow(
  clickhouse: ClickHouseClient,
  months: number,
): Promise<TrainingWindow | { problem: string }> {
  const [row] = await (
    await clickhouse.query({
      query: 'SELECT count() AS n, min(event_time_ms) AS first_ms, max(event_time_ms) AS last_ms FROM fact_transaction',
      format: 'JSONEachRow',
    })
  ).json<{ n: string | number; first_ms: string | number; last_ms: string | number }>();
  if (!row || Number(row.n) === 0) return { problem: 'fact_transaction is empty: nothing to train on' };
  return trainingWindow(Number(row.first_ms), Number(row.last_ms), { months, horizonDays: HORIZON_DAYS });
}

interface TrainProcess {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  /** The last lines of stderr (its errors end up there). */
  readonly stderrTail: readonly string[];
  /** Why this process stopped the training, if it did. */
  readonly stopped: 'timeout' | 'aborted' | null;
}

/**
 * `node training/train.mjs train <args>` in its own process group (it runs npm, tsx and Python under it), so a
 * timeout stops all of it.
 */
function runTraining(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  progress: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<TrainProcess> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [TRAIN_SCRIPT, 'train', ...args], {
      cwd: REPO_ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let pending = '';
    const tail: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        progress(line);
        tail.push(line);
        if (tail.length > 40) tail.shift();
      }
    });
    let stopped: 'timeout' | 'aborted' | null = null;
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    let killer: NodeJS.Timeout | undefined;
    const stop = (why: 'timeout' | 'aborted') => {
      if (stopped) return;
      stopped = why;
      signalGroup('SIGTERM');
      killer = setTimeout(() => {
        signalGroup('SIGKILL');
      }, KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      stop('timeout');
    }, timeoutMs);
    const onAbort = () => {
      stop('aborted');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    child.on('error', (err) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code, exitSignal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      signal?.removeEventListener('abort', onAbort);
      if (pending) tail.push(pending);
      // Whatever the training started and left behind (a tsx child of npm) goes with it.
      if (stopped) signalGroup('SIGKILL');
      resolvePromise({ code, signal: exitSignal, stdout, stderrTail: tail, stopped });
    });
  });
}

/** The new version's and its baseline's figures as registry.json records them (ONNX, the gate's newest period). */
async function registryFigures(
  modelDir: string,
  version: string,
): Promise<{ candidate: AucPair | null; baseline: (AucPair & { version: string }) | null }> {
  try {
    const registry = JSON.parse(await readFile(join(modelDir, 'registry.json'), 'utf8')) as {
      models?: Record<string, unknown>[];
    };
    const entry = registry.models?.find((m) => m['version'] === version);
    if (!entry) return { candidate: null, baseline: null };
    const candidate = { roc_auc: Number(entry['roc_auc']), pr_auc: Number(entry['pr_auc']) };
    const baselineVersion = typeof entry['baseline_version'] === 'string' ? entry['baseline_version'] : '';
    const baseline = baselineVersion
      ? {
          version: baselineVersion,
          roc_auc: Number(entry['baseline_roc_auc']),
          pr_auc: Number(entry['baseline_pr_auc']),
        }
      : null;
    return { candidate, baseline };
  } catch {
    return { candidate: null, baseline: null };
  }
}

/** registry.json's current version (the decision record), to explain a pointer that lags it after a failure. */
async function registryCurrent(modelDir: string): Promise<string | null> {
  try {
    const registry = JSON.parse(await readFile(join(modelDir, 'registry.json'), 'utf8')) as { current?: unknown };
    return typeof registry.current === 'string' ? registry.current : null;
  } catch {
    return null;
  }
}

function failureReason(result: TrainProcess, timeoutMs: number): string {
  const errors = result.stderrTail.filter((l) => /error|Error|failed|Traceback/.test(l));
  const last = (errors.at(-1) ?? result.stderrTail.filter((l) => l.trim()).at(-1) ?? '').trim();
  const how =
    result.stopped === 'timeout'
      ? `stopped after the retrain timeout of ${Math.round(timeoutMs / 1000)} s`
      : result.stopped === 'aborted'
        ? 'stopped: the retrainer is shutting down'
        : result.signal
          ? `training ended by ${result.signal}`
          : `training exited with code ${result.code}`;
  return last ? `${how}: ${last}` : how;
}

/**
 * Runs one retraining and records it. Resolves with the run whatever its outcome (a failure is an outcome with its
 * reason); rejects only with RetrainBusyError, when another process is retraining.
 */
export async function retrain(options: RetrainOptions): Promise<RetrainRun> {
  const { config, clickhouse, trigger } = options;
  const now = options.now ?? Date.now;
  const modelDir = resolve(config.MODEL_DIR);
  const months = options.months ?? config.RETRAIN_MONTHS;
  const stepDays = options.stepDays ?? config.RETRAIN_STEP_DAYS;
  const timeoutMs = options.timeoutMs ?? config.RETRAIN_TIMEOUT_MS;
  await mkdir(modelDir, { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(modelDir, {
      lockfilePath: join(modelDir, LOCK_FILE),
      realpath: false,
      stale: 60_000,
      update: 15_000,
      // A lock lost to a stalled event loop is reported by the next compromise check; the run itself goes on, and
      // training/'s own registry lock still keeps registrations apart.
      onCompromised: () => undefined,
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new RetrainBusyError(modelDir);
    throw err;
  }
  try {
    const startedMs = now();
    const previous = await currentVersion(modelDir);
    const base = { trigger, previous, alert: options.alert ?? null, started_ms: startedMs };
    const finish = async (run: Omit<RetrainRun, keyof typeof base | 'finished_ms'>): Promise<RetrainRun> => {
      const record: RetrainRun = { ...base, ...run, reason: run.reason.trim(), finished_ms: now() };
      await writeStatus(modelDir, recordRun(await readStatus(modelDir).catch(() => EMPTY_STATUS), record));
      return record;
    };
    const failed = async (reason: string, rest: Partial<RetrainRun> = {}) =>
      finish({
        outcome: 'failed',
        reason,
        version: null,
        current: await currentVersion(modelDir).catch(() => null),
        window: null,
        candidate: null,
        baseline: null,
        ...rest,
      });

    let window: TrainingWindow;
    try {
      const found = await warehouseWindow(clickhouse, months);
      if ('problem' in found) return await failed(found.problem);
      window = found;
    } catch (err) {
      return await failed(`cannot read the warehouse's time range: ${String(err)}`);
    }
    const version = retrainVersion(startedMs);
    const args = [
      '--from',
      window.from,
      '--to',
      window.to,
      '--step-days',
      String(stepDays),
      '--min-improvement-over-logistic',
      String(config.RETRAIN_MIN_IMPROVEMENT_OVER_LOGISTIC),
      '--horizon-days',
      String(HORIZON_DAYS),
      '--models-dir',
      modelDir,
      '--version',
      version,
    ];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CLICKHOUSE_URL: config.CLICKHOUSE_URL,
      CLICKHOUSE_USER: config.CLICKHOUSE_USER,
      CLICKHOUSE_PASSWORD: config.CLICKHOUSE_PASSWORD.reveal(),
      CLICKHOUSE_DATABASE: config.CLICKHOUSE_DATABASE,
      MODEL_DIR: modelDir,
    };
    let result: TrainProcess;
    try {
      result = await runTraining(args, env, timeoutMs, options.progress ?? (() => undefined), options.signal);
    } catch (err) {
      return await failed(`cannot start the training: ${String(err)}`, { version, window });
    }
    const summary = result.code === 0 ? parseTrainSummary(result.stdout) : null;
    const current = await currentVersion(modelDir).catch(() => null);
    if (!summary) {
      const decided = await registryCurrent(modelDir);
      const lag =
        decided && decided !== current
          ? `; registry.json already names ${decided} current but \`current\` still serves ${current ?? '(none)'}: ` +
            'the next run completes the promotion (or `npm run train -- promote` by hand)'
          : '';
      const reason =
        result.code === 0 ? 'training exited 0 without its summary line' : failureReason(result, timeoutMs);
      return await failed(reason + lag, { version, window, current });
    }
    const figures = await registryFigures(modelDir, version);
    const outcome = summary.promoted ? 'promoted' : 'kept';
    const expected = summary.promoted ? version : previous;
    if (current !== expected) {
      return await failed(
        `training reported ${outcome} (${summary.reason}) but \`current\` names ${current ?? '(none)'}, not ` +
          (expected ?? '(none)'),
        { version, window, current, ...figures },
      );
    }
    return await finish({ outcome, reason: summary.reason, version, current, window, ...figures });
  } finally {
    await release().catch(() => undefined);
  }
}

/**
 * Retraining decisions, free of I/O: which reference dates a run trains on, which firing alerts ask for a run, what
 * `npm run train` answered, and the status record every run leaves in MODEL_DIR (the metrics and alerts read it).
 */
import { z } from 'zod';

const DAY_MS = 86_400_000;

export type RetrainOutcome = 'promoted' | 'kept' | 'failed';
export type RetrainTrigger = 'schedule' | 'alert' | 'manual';
export const RETRAIN_OUTCOMES: readonly RetrainOutcome[] = ['promoted', 'kept', 'failed'];
export const RETRAIN_TRIGGERS: readonly RetrainTrigger[] = ['schedule', 'alert', 'manual'];

/** The training set's reference dates: UTC midnights in [from, to), as `npm run train -- --from … --to …` takes them. */
export interface TrainingWindow {
  readonly from: string;
  readonly to: string;
}

export interface WindowOptions {
  readonly months: number;
  readonly horizonDays: number;
  /** History a reference date needs before its features mean something (training/'s warm-up). @default 30 */
  readonly warmupDays?: number;
}

const utcDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** `dayMs` moved back by `months` calendar months (the day of month clamped: 31 March − 1 month = 28/29 February). */
function monthsBefore(dayMs: number, months: number): number {
  const d = new Date(dayMs);
  const target = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - months, 1));
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  return Date.UTC(target.getUTCFullYear(), target.getUTCMonth(), Math.min(d.getUTCDate(), lastDay));
}

/**
 * The last `months` of reference dates the warehouse can label: the window ends where training/'s own default does
 * (the newest transaction's day is taken as incomplete, so the last reference date is that day − horizon and every
 * label window is fully observed) and starts `months` earlier, but never before the first transaction's day plus the
 * warm-up. The warehouse's newest event, not the wall clock, is "now": a replay of old data retrains on its own time,
 * and a stalled ingest (NoNewTransactions) does not shrink the window to nothing.
 */
export function trainingWindow(
  firstMs: number,
  lastMs: number,
  { months, horizonDays, warmupDays = 30 }: WindowOptions,
): TrainingWindow | { readonly problem: string } {
  const end = utcDay(lastMs) - (horizonDays - 1) * DAY_MS;
  const start = Math.max(monthsBefore(end, months), utcDay(firstMs) + warmupDays * DAY_MS);
  if (end <= start) {
    return {
      problem:
        `the warehouse holds transactions from ${isoDay(firstMs)} to ${isoDay(lastMs)}: too short for ` +
        `${warmupDays} days of history plus a ${horizonDays}-day label horizon`,
    };
  }
  return { from: isoDay(start), to: isoDay(end) };
}

/** A model version for a retraining started at `nowMs`: training/'s UTC stamp plus `-retrain`, so versions sort by time. */
export function retrainVersion(nowMs: number): string {
  return `${new Date(nowMs).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z-retrain`;
}

// --- What `npm run train` printed: its last stdout line is one JSON object ---

const trainSummarySchema = z.object({
  version: z.string(),
  status: z.enum(['current', 'candidate', 'retired']),
  promoted: z.boolean(),
  reason: z.string(),
  baseline_version: z.string().nullable(),
});
export type TrainSummary = z.infer<typeof trainSummarySchema>;

/** The summary of a finished `train` run, or null when its stdout does not end with one. */
export function parseTrainSummary(stdout: string): TrainSummary | null {
  const last = stdout.trimEnd().split('\n').at(-1) ?? '';
  try {
    const parsed = trainSummarySchema.safeParse(JSON.parse(last));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

// --- Alerts that ask for a retraining ---

/** A firing alert with `action="retrain"` (ModelAucLow), from Prometheus or an Alertmanager webhook. */
export interface RetrainAlert {
  readonly name: string;
  /** The model version the alert is about; null when it names none. */
  readonly modelVersion: string | null;
}

const labelsSchema = z.record(z.string(), z.string());
const prometheusAlertsSchema = z.object({
  status: z.literal('success'),
  data: z.object({ alerts: z.array(z.object({ labels: labelsSchema, state: z.string() })) }),
});
const alertmanagerWebhookSchema = z.object({
  alerts: z.array(z.object({ labels: labelsSchema, status: z.string() })).max(10_000),
});

const toRetrainAlert = (labels: Record<string, string>): RetrainAlert => ({
  name: labels['alertname'] ?? '',
  modelVersion: labels['model_version'] ?? null,
});

/** Firing retrain alerts in the answer of Prometheus' GET /api/v1/alerts; throws with the reason on another shape. */
export function retrainAlertsFromPrometheus(body: unknown): RetrainAlert[] {
  const parsed = prometheusAlertsSchema.safeParse(body);
  if (!parsed.success) throw new Error(`not a Prometheus /api/v1/alerts answer: ${z.prettifyError(parsed.error)}`);
  return parsed.data.data.alerts
    .filter((a) => a.state === 'firing' && a.labels['action'] === 'retrain')
    .map((a) => toRetrainAlert(a.labels));
}

/** Firing retrain alerts in an Alertmanager webhook body (version 4); throws with the reason on another shape. */
export function retrainAlertsFromWebhook(body: unknown): RetrainAlert[] {
  const parsed = alertmanagerWebhookSchema.safeParse(body);
  if (!parsed.success) throw new Error(`not an Alertmanager webhook body: ${z.prettifyError(parsed.error)}`);
  return parsed.data.alerts
    .filter((a) => a.status === 'firing' && a.labels['action'] === 'retrain')
    .map((a) => toRetrainAlert(a.labels));
}

export type AlertDecision =
  { readonly start: true; readonly alert: RetrainAlert } | { readonly start: false; readonly reason: string };

/**
 * Whether firing retrain alerts start a run. Only an alert about the model being served counts: `model_auc` keeps a
 * replaced version's last figure, so its alert goes on firing after a better model took over, and retraining again
 * would not help it. One run per cooldown: the alert keeps firing for days (the new model's first online AUC needs a
 * closed 7-day window), and a run that kept the current model would only find the same answer an hour later.
 */
export function decideOnAlerts(
  alerts: readonly RetrainAlert[],
  currentVersion: string | null,
  lastAlertRunMs: number | null,
  cooldownMs: number,
  nowMs: number,
): AlertDecision {
  if (alerts.length === 0) return { start: false, reason: 'no retrain alert is firing' };
  const about = alerts.find((a) => a.modelVersion === null || a.modelVersion === currentVersion);
  if (!about) {
    const versions = [...new Set(alerts.map((a) => a.modelVersion))].join(', ');
    return {
      start: false,
      reason: `retrain alerts fire for ${versions}, not for the current model ${currentVersion ?? '(none)'}`,
    };
  }
  if (lastAlertRunMs !== null && nowMs - lastAlertRunMs < cooldownMs) {
    return {
      start: false,
      reason: `an alert started a run at ${new Date(lastAlertRunMs).toISOString()}; the next one may start from ${new Date(lastAlertRunMs + cooldownMs).toISOString()}`,
    };
  }
  return { start: true, alert: about };
}

// --- The status record (MODEL_DIR/retrain-status.json) ---

export interface AucPair {
  readonly roc_auc: number;
  readonly pr_auc: number;
}

/** One finished run. */
export interface RetrainRun {
  readonly trigger: RetrainTrigger;
  readonly outcome: RetrainOutcome;
  /** Why: the gate's reason (promoted or kept) or what went wrong (failed). */
  readonly reason: string;
  /** The version this run trained (null when it failed before choosing one). */
  readonly version: string | null;
  /** The current model before and after the run. */
  readonly previous: string | null;
  readonly current: string | null;
  readonly window: TrainingWindow | null;
  /** The new model and the model it was gated against, on the same newest period (the registry's figures). */
  readonly candidate: AucPair | null;
  readonly baseline: (AucPair & { readonly version: string }) | null;
  /** The alert that started it, for trigger "alert". */
  readonly alert: RetrainAlert | null;
  readonly started_ms: number;
  readonly finished_ms: number;
}

export interface RetrainStatus {
  readonly schema_version: 1;
  /** Runs so far by `<outcome>:<trigger>` (a Prometheus counter that survives restarts and counts CLI runs too). */
  readonly runs: Readonly<Record<string, number>>;
  readonly last_run: RetrainRun | null;
  /** Finish time of the newest run that promoted or kept (the gate decided). */
  readonly last_success_ms: number | null;
  /** Start time of the newest run an alert started (the cooldown's origin). */
  readonly last_alert_run_ms: number | null;
}

export const EMPTY_STATUS: RetrainStatus = {
  schema_version: 1,
  runs: {},
  last_run: null,
  last_success_ms: null,
  last_alert_run_ms: null,
};

export const runKey = (outcome: RetrainOutcome, trigger: RetrainTrigger) => `${outcome}:${trigger}`;

export function recordRun(status: RetrainStatus, run: RetrainRun): RetrainStatus {
  const key = runKey(run.outcome, run.trigger);
  return {
    schema_version: 1,
    runs: { ...status.runs, [key]: (status.runs[key] ?? 0) + 1 },
    last_run: run,
    last_success_ms: run.outcome === 'failed' ? status.last_success_ms : run.finished_ms,
    last_alert_run_ms: run.trigger === 'alert' ? run.started_ms : status.last_alert_run_ms,
  };
}

const statusSchema = z.object({
  schema_version: z.literal(1),
  runs: z.record(z.string(), z.number().int().min(0)),
  last_run: z.custom<RetrainRun>((v) => v === null || (typeof v === 'object' && 'outcome' in v)),
  last_success_ms: z.number().nullable(),
  last_alert_run_ms: z.number().nullable(),
});

/** Reads a status file's text; throws with the reason when it is not one (a hand-edited or foreign file). */
export function parseStatus(text: string): RetrainStatus {
  const parsed = statusSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`not a retrain status: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** The one-line reason for alert annotations: Prometheus labels are kept short and on one line. */
export function shortReason(reason: string, max = 300): string {
  const line = reason.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

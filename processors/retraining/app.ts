/**
 * The retrainer (`npm run start:retrainer`; one wiring for it and the tests): retrains on a cron schedule
 * (RETRAIN_SCHEDULE, UTC) and when the model-AUC alert fires for the served model, found by polling Prometheus'
 * GET /api/v1/alerts (PROMETHEUS_URL, every RETRAIN_ALERT_POLL_MS) or pushed by Alertmanager to POST /alerts. One run
 * at a time (in this process: a trigger during a run is skipped and logged; across processes: the job's lock).
 *
 * HTTP on 127.0.0.1 (port 18095 unless METRICS_PORT): GET /metrics, GET /status (the last run, the counts, the next
 * scheduled run), POST /alerts (an Alertmanager webhook receiver; answers 202 with whether a run started and why).
 * The metrics come from MODEL_DIR/retrain-status.json, so they survive restarts and include `npm run retrain` runs.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { Cron } from 'croner';
import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../runtime/config.js';
import type { Logger } from '../runtime/log.js';
import { currentVersion, readStatus, retrain, RetrainBusyError, type RetrainOptions } from './job.js';
import {
  decideOnAlerts,
  RETRAIN_OUTCOMES,
  RETRAIN_TRIGGERS,
  retrainAlertsFromPrometheus,
  retrainAlertsFromWebhook,
  runKey,
  shortReason,
  type RetrainAlert,
  type RetrainRun,
  type RetrainTrigger,
} from './logic.js';

export interface RetrainerDeps {
  readonly config: Config;
  readonly clickhouse: ClickHouseClient;
  readonly registry: Registry;
  readonly log: Logger;
  /** Passed to every run (tests: a short window, a coarse step, a timeout). */
  readonly runOptions?: Partial<Pick<RetrainOptions, 'months' | 'stepDays' | 'timeoutMs'>>;
  /** @default Date.now */
  readonly now?: () => number;
}

export type StartAnswer =
  | { readonly started: true; readonly run: Promise<RetrainRun | null> }
  | { readonly started: false; readonly reason: string };

export class RetrainerApp {
  private readonly runs: Counter<'outcome' | 'trigger'>;
  private readonly running: Gauge;
  private readonly lastSuccess: Gauge;
  private readonly lastRun: Gauge;
  private readonly lastDuration: Gauge;
  private readonly lastOutcome: Gauge<'outcome' | 'trigger' | 'reason' | 'version' | 'current'>;
  private readonly candidateAuc: Gauge<'metric'>;
  private readonly currentAuc: Gauge<'metric'>;
  private readonly nextRun: Gauge;
  private readonly alertChecks: Counter<'result'>;
  private active: Promise<RetrainRun | null> | undefined;
  private readonly abort = new AbortController();
  private schedule: Cron | undefined;
  private poller: NodeJS.Timeout | undefined;
  private pollFailing = false;
  private server: FastifyInstance | undefined;

  constructor(private readonly deps: RetrainerDeps) {
    const registers = [deps.registry];
    this.runs = new Counter({
      name: 'retrain_runs_total',
      help: 'Retraining runs by outcome (promoted, kept, failed) and trigger (schedule, alert, manual)',
      labelNames: ['outcome', 'trigger'],
      registers,
    });
    this.running = new Gauge({ name: 'retrain_running', help: '1 while this retrainer runs a retraining', registers });
    this.lastSuccess = new Gauge({
      name: 'retrain_last_success_timestamp_seconds',
      help: 'When the newest retraining that reached the gate (promoted or kept) finished',
      registers,
    });
    this.lastRun = new Gauge({
      name: 'retrain_last_run_timestamp_seconds',
      help: 'When the newest retraining finished, whatever its outcome',
      registers,
    });
    this.lastDuration = new Gauge({
      name: 'retrain_last_run_duration_seconds',
      help: 'How long the newest retraining took',
      registers,
    });
    this.lastOutcome = new Gauge({
      name: 'retrain_last_outcome',
      help: 'The newest retraining (always 1): its outcome, trigger, reason, trained version and the current model after it',
      labelNames: ['outcome', 'trigger', 'reason', 'version', 'current'],
      registers,
    });
    this.candidateAuc = new Gauge({
      name: 'retrain_candidate_auc',
      help: "The newest retraining's model on the gate's newest period (metric: roc_auc, pr_auc)",
      labelNames: ['metric'],
      registers,
    });
    this.currentAuc = new Gauge({
      name: 'retrain_current_auc',
      help: 'The model the newest retraining was gated against, on the same rows (metric: roc_auc, pr_auc)',
      labelNames: ['metric'],
      registers,
    });
    this.nextRun = new Gauge({
      name: 'retrain_next_scheduled_run_timestamp_seconds',
      help: 'When the schedule starts the next retraining (absent when RETRAIN_SCHEDULE=off)',
      registers,
    });
    this.alertChecks = new Counter({
      name: 'retrain_alert_checks_total',
      help: 'Looks at firing alerts (Prometheus polls and webhook calls) by result: started, ignored, error',
      labelNames: ['result'],
      registers,
    });
  }

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Refreshes the gauges from MODEL_DIR/retrain-status.json (every scrape: a CLI run shows up too). */
  async refreshMetrics(): Promise<void> {
    const status = await readStatus(this.deps.config.MODEL_DIR);
    this.runs.reset();
    for (const outcome of RETRAIN_OUTCOMES) {
      for (const trigger of RETRAIN_TRIGGERS)
        this.runs.inc({ outcome, trigger }, status.runs[runKey(outcome, trigger)] ?? 0);
    }
    this.running.set(this.active ? 1 : 0);
    this.lastSuccess.reset();
    if (status.last_success_ms !== null) this.lastSuccess.set(status.last_success_ms / 1000);
    this.lastRun.reset();
    this.lastDuration.reset();
    this.lastOutcome.reset();
    this.candidateAuc.reset();
    this.currentAuc.reset();
    const run = status.last_run;
    if (run) {
      this.lastRun.set(run.finished_ms / 1000);
      this.lastDuration.set((run.finished_ms - run.started_ms) / 1000);
      this.lastOutcome.set(
        {
          outcome: run.outcome,
          trigger: run.trigger,
          reason: shortReason(run.reason),
          version: run.version ?? '',
          current: run.current ?? '',
        },
        1,
      );
      if (run.candidate) {
        this.candidateAuc.set({ metric: 'roc_auc' }, run.candidate.roc_auc);
        this.candidateAuc.set({ metric: 'pr_auc' }, run.candidate.pr_auc);
      }
      if (run.baseline) {
        this.currentAuc.set({ metric: 'roc_auc' }, run.baseline.roc_auc);
        this.currentAuc.set({ metric: 'pr_auc' }, run.baseline.pr_auc);
      }
    }
    this.nextRun.reset();
    const next = this.schedule?.nextRun();
    if (next) this.nextRun.set(next.getTime() / 1000);
  }

  async metricsText(): Promise<string> {
    await this.refreshMetrics();
    return this.deps.registry.metrics();
  }

  /** Starts a run unless one is in progress here; the promise resolves with the run (null: another process had it). */
  runNow(trigger: RetrainTrigger, alert: RetrainAlert | null = null): StartAnswer {
    const { log } = this.deps;
    if (this.active) return { started: false, reason: 'a retraining is already running in this process' };
    const started = this.now;
    log.info('retraining started', {
      trigger,
      ...(alert ? { alert: alert.name, model_version: alert.modelVersion } : {}),
    });
    this.active = retrain({
      config: this.deps.config,
      clickhouse: this.deps.clickhouse,
      trigger,
      alert,
      signal: this.abort.signal,
      progress: (line) => {
        if (line.trim()) log.debug('training', { line });
      },
      ...(this.deps.now ? { now: this.deps.now } : {}),
      ...this.deps.runOptions,
    })
      .then(
        (run) => {
          this.logRun(run);
          return run;
        },
        (err: unknown) => {
          if (err instanceof RetrainBusyError) {
            log.warn('retraining skipped', { trigger, reason: err.message });
            return null;
          }
          log.error('retraining could not run', {
            trigger,
            error: String(err),
            duration_s: (this.now - started) / 1000,
          });
          return null;
        },
      )
      .finally(() => {
        this.active = undefined;
        void this.refreshMetrics().catch(() => undefined);
      });
    void this.refreshMetrics().catch(() => undefined);
    return { started: true, run: this.active };
  }

  /** The structured line every run ends with: what an operator greps for and a log-based alert can match. */
  private logRun(run: RetrainRun): void {
    const fields = {
      outcome: run.outcome,
      trigger: run.trigger,
      version: run.version,
      previous: run.previous,
      current: run.current,
      reason: run.reason,
      window: run.window,
      candidate_roc_auc: run.candidate?.roc_auc ?? null,
      candidate_pr_auc: run.candidate?.pr_auc ?? null,
      current_roc_auc: run.baseline?.roc_auc ?? null,
      current_pr_auc: run.baseline?.pr_auc ?? null,
      duration_s: (run.finished_ms - run.started_ms) / 1000,
      ...(run.alert ? { alert: run.alert.name, alert_model_version: run.alert.modelVersion } : {}),
    };
    if (run.outcome === 'failed') this.deps.log.error('retraining finished', fields);
    else if (run.outcome === 'kept') this.deps.log.warn('retraining finished', fields);
    else this.deps.log.info('retraining finished', fields);
  }

  /** What firing retrain alerts lead to: a run, or the reason for none. */
  async onAlerts(alerts: readonly RetrainAlert[]): Promise<StartAnswer> {
    const modelDir = this.deps.config.MODEL_DIR;
    const [current, status] = await Promise.all([currentVersion(modelDir), readStatus(modelDir)]);
    const decision = decideOnAlerts(
      alerts,
      current,
      status.last_alert_run_ms,
      this.deps.config.RETRAIN_ALERT_COOLDOWN_MS,
      this.now,
    );
    if (!decision.start) {
      if (alerts.length > 0) {
        this.alertChecks.inc({ result: 'ignored' });
        this.deps.log.debug('retrain alert ignored', { reason: decision.reason });
      }
      return { started: false, reason: decision.reason };
    }
    const answer = this.runNow('alert', decision.alert);
    this.alertChecks.inc({ result: answer.started ? 'started' : 'ignored' });
    return answer;
  }

  /** Asks Prometheus which alerts fire now; a failure is logged once until Prometheus answers again. */
  async pollPrometheus(): Promise<StartAnswer> {
    const url = new URL('/api/v1/alerts', this.deps.config.PROMETHEUS_URL);
    let alerts: RetrainAlert[];
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      alerts = retrainAlertsFromPrometheus(await response.json());
      if (this.pollFailing) this.deps.log.info('Prometheus answers again', { url: url.href });
      this.pollFailing = false;
    } catch (err) {
      this.alertChecks.inc({ result: 'error' });
      if (!this.pollFailing) {
        this.deps.log.warn('cannot read firing alerts from Prometheus; retrying every poll', {
          url: url.href,
          error: String(err),
        });
      }
      this.pollFailing = true;
      return { started: false, reason: `cannot read ${url.href}: ${String(err)}` };
    }
    return this.onAlerts(alerts);
  }

  /** The schedule and the alert poll. */
  start(): void {
    const { config, log } = this.deps;
    if (config.RETRAIN_SCHEDULE !== 'off') {
      this.schedule = new Cron(config.RETRAIN_SCHEDULE, { timezone: 'UTC' }, () => {
        const answer = this.runNow('schedule');
        if (!answer.started) log.warn('scheduled retraining skipped', { reason: answer.reason });
      });
    }
    if (config.RETRAIN_ALERT_POLL_MS > 0) {
      this.poller = setInterval(() => void this.pollPrometheus().catch(() => undefined), config.RETRAIN_ALERT_POLL_MS);
    }
  }

  /** GET /metrics, GET /status, POST /alerts on host:port; resolves with the URL. */
  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    const server = Fastify({ bodyLimit: 1 << 20, logger: false });
    server.get('/metrics', async (_request, reply) => {
      const text = await this.metricsText();
      return reply.type(this.deps.registry.contentType).send(text);
    });
    server.get('/status', async () => ({
      ...(await readStatus(this.deps.config.MODEL_DIR)),
      running: this.active !== undefined,
      current: await currentVersion(this.deps.config.MODEL_DIR),
      next_scheduled_run: this.schedule?.nextRun()?.toISOString() ?? null,
    }));
    server.post('/alerts', async (request, reply) => {
      let alerts: RetrainAlert[];
      try {
        alerts = retrainAlertsFromWebhook(request.body);
      } catch (err) {
        return reply.code(400).send({ error: 'bad_request', message: String(err) });
      }
      const answer = await this.onAlerts(alerts);
      return reply
        .code(202)
        .send(
          answer.started ? { started: true, reason: 'retraining started' } : { started: false, reason: answer.reason },
        );
    });
    this.server = server;
    return server.listen({ host, port });
  }

  /** Stops the triggers, stops a running training (recorded as failed; the served model stays), closes HTTP. */
  async stop(): Promise<void> {
    this.schedule?.stop();
    clearInterval(this.poller);
    this.abort.abort();
    await this.active;
    await this.server?.close();
  }
}

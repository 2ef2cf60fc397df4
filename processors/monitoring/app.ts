/**
 * The long-running monitor (`npm run start:monitor`; one wiring for it, the CLI and the tests): every MONITOR_EVERY_MS
 * it runs the online model monitoring job over the last days and refreshes the warehouse-derived gauges the alerts
 * read: `model_auc{model_version}` (ROC-AUC of the newest monitored day), `cross_platform_customer_ratio` and
 * `high_intent_users`.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { Counter, Gauge, type Registry } from 'prom-client';
import { runNamedQuery } from '../../clickhouse/queries.js';
import type { Logger } from '../runtime/log.js';
import { latestAuc, runModelMonitoring, type DayResult } from './job.js';

export interface MonitorAppDeps {
  readonly clickhouse: ClickHouseClient;
  readonly registry: Registry;
  readonly log: Logger;
  /** Days re-evaluated on every run (late purchases and late scores change recent days). @default 30 */
  readonly days?: number;
}

export class MonitorApp {
  private readonly auc: Gauge<'model_version'>;
  private readonly crossPlatform: Gauge;
  private readonly highIntent: Gauge;
  private readonly runs: Counter<'outcome'>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<DayResult[]> | undefined;

  constructor(private readonly deps: MonitorAppDeps) {
    const registers = [deps.registry];
    this.auc = new Gauge({
      name: 'model_auc',
      help: 'Online ROC-AUC of each model version on its newest monitored day (scores held vs purchases within 7 days)',
      labelNames: ['model_version'],
      registers,
    });
    this.crossPlatform = new Gauge({
      name: 'cross_platform_customer_ratio',
      help: 'Share of active customers whose identities span two or more platforms',
      registers,
    });
    this.highIntent = new Gauge({
      name: 'high_intent_users',
      help: 'Active customers whose latest intent level is HIGH',
      registers,
    });
    this.runs = new Counter({
      name: 'monitor_runs_total',
      help: 'Monitoring runs, by outcome',
      labelNames: ['outcome'],
      registers,
    });
  }

  /** One run (runs do not overlap: a call during a run joins it). */
  run(): Promise<DayResult[]> {
    this.running ??= this.runOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runOnce(): Promise<DayResult[]> {
    const { clickhouse, log } = this.deps;
    try {
      const days = await runModelMonitoring(clickhouse, { days: this.deps.days ?? 30 });
      this.auc.reset();
      for (const [version, auc] of await latestAuc(clickhouse)) this.auc.set({ model_version: version }, auc);
      const [share] = await runNamedQuery(clickhouse, 'cross-platform-share');
      this.crossPlatform.set(Number(share?.['share'] ?? 0));
      const levels = await runNamedQuery(clickhouse, 'intent-level-distribution');
      this.highIntent.set(Number(levels.find((l) => l['intent_level'] === 'HIGH')?.['customers'] ?? 0));
      this.runs.inc({ outcome: 'ok' });
      log.info('monitoring run', { days: days.length });
      return days;
    } catch (err) {
      this.runs.inc({ outcome: 'failed' });
      log.error('monitoring run failed; the next run tries again', { error: String(err) });
      throw err;
    }
  }

  start(everyMs: number): void {
    void this.run().catch(() => undefined);
    this.timer = setInterval(() => void this.run().catch(() => undefined), everyMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}

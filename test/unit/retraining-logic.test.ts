import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../processors/runtime/config.js';
import {
  decideOnAlerts,
  EMPTY_STATUS,
  parseStatus,
  parseTrainSummary,
  recordRun,
  retrainAlertsFromPrometheus,
  retrainAlertsFromWebhook,
  retrainVersion,
  shortReason,
  trainingWindow,
  type RetrainRun,
} from '../../processors/retraining/logic.js';

const at = (iso: string) => Date.parse(iso);

describe('the retraining window', () => {
  it('is the last 6 months of reference dates whose 7-day labels the warehouse has closed', () => {
    // Newest transaction on 2011-12-09 (a partial day): the last reference date is 2011-12-02, as training/ chooses.
    const w = trainingWindow(at('2010-12-01T08:26:00Z'), at('2011-12-09T12:50:00Z'), { months: 6, horizonDays: 7 });
    expect(w).toEqual({ from: '2011-06-03', to: '2011-12-03' });
  });

  it('starts no earlier than 30 days after the first transaction', () => {
    const w = trainingWindow(at('2024-01-10T10:00:00Z'), at('2024-04-20T10:00:00Z'), { months: 6, horizonDays: 7 });
    expect(w).toEqual({ from: '2024-02-09', to: '2024-04-14' });
  });

  it('clamps the day of month when going back (31 August - 6 months = 28 February)', () => {
    const w = trainingWindow(at('2020-01-01T00:00:00Z'), at('2023-09-06T00:00:00Z'), { months: 6, horizonDays: 7 });
    expect(w).toEqual({ from: '2023-02-28', to: '2023-08-31' });
  });

  it('says why when the warehouse is too short', () => {
    const w = trainingWindow(at('2024-01-10T10:00:00Z'), at('2024-02-12T10:00:00Z'), { months: 6, horizonDays: 7 });
    expect(w).toEqual({ problem: expect.stringMatching(/too short for 30 days of history plus a 7-day/) as string });
  });
});

describe('versions and the train summary', () => {
  it('names a retrained version by its UTC start, as training/ accepts it', () => {
    expect(retrainVersion(at('2026-12-05T20:41:07.123Z'))).toBe('20261205T204107Z-retrain');
    expect(retrainVersion(at('2026-12-05T20:41:07Z'))).toMatch(/^\d{8}T\d{6}Z(?:-[A-Za-z0-9][A-Za-z0-9-]*)?$/);
  });

  it('reads the last stdout line of npm run train, and nothing else', () => {
    const line = JSON.stringify({
      version: 'v2',
      status: 'candidate',
      promoted: false,
      reason: 'does not beat current v1',
      baseline_version: 'v1',
      models: {},
    });
    expect(parseTrainSummary(`model v2: candidate\n${line}\n`)).toMatchObject({ promoted: false, status: 'candidate' });
    expect(parseTrainSummary('model v2: candidate\n')).toBeNull();
    expect(parseTrainSummary(`${line}\ntrailing text`)).toBeNull();
    expect(parseTrainSummary('{"version": "v2"}')).toBeNull();
  });
});

describe('alerts that ask for a retraining', () => {
  const prometheus = {
    status: 'success',
    data: {
      alerts: [
        { labels: { alertname: 'ModelAucLow', action: 'retrain', model_version: 'v1' }, state: 'firing' },
        { labels: { alertname: 'ModelAucLow', action: 'retrain', model_version: 'v2' }, state: 'pending' },
        { labels: { alertname: 'CrossPlatformRateLow', action: 'review-matching' }, state: 'firing' },
      ],
    },
  };

  it('takes the firing action="retrain" alerts of Prometheus /api/v1/alerts', () => {
    expect(retrainAlertsFromPrometheus(prometheus)).toEqual([{ name: 'ModelAucLow', modelVersion: 'v1' }]);
    expect(() => retrainAlertsFromPrometheus({ status: 'error' })).toThrow(/not a Prometheus/);
  });

  it('takes the firing ones of an Alertmanager webhook, and refuses other bodies with the reason', () => {
    const body = {
      version: '4',
      status: 'firing',
      alerts: [
        { status: 'firing', labels: { alertname: 'ModelAucLow', action: 'retrain', model_version: 'v3' } },
        { status: 'resolved', labels: { alertname: 'ModelAucLow', action: 'retrain', model_version: 'v1' } },
      ],
    };
    expect(retrainAlertsFromWebhook(body)).toEqual([{ name: 'ModelAucLow', modelVersion: 'v3' }]);
    expect(() => retrainAlertsFromWebhook({ alerts: [{ labels: 'x' }] })).toThrow(/not an Alertmanager webhook/);
    expect(() => retrainAlertsFromWebhook(null)).toThrow(/not an Alertmanager webhook/);
  });

  const now = at('2026-12-05T12:00:00Z');
  const day = 86_400_000;
  const low = (v: string | null) => ({ name: 'ModelAucLow', modelVersion: v });

  it('starts a run for the served model only', () => {
    expect(decideOnAlerts([low('v1')], 'v1', null, day, now)).toEqual({ start: true, alert: low('v1') });
    expect(decideOnAlerts([low(null)], 'v1', null, day, now)).toEqual({ start: true, alert: low(null) });
    // The replaced model's figure stays in model_auc and its alert goes on firing: no reason to retrain again.
    expect(decideOnAlerts([low('v0')], 'v1', null, day, now)).toEqual({
      start: false,
      reason: 'retrain alerts fire for v0, not for the current model v1',
    });
    expect(decideOnAlerts([], 'v1', null, day, now)).toMatchObject({ start: false });
  });

  it('starts one run per cooldown however long the alert fires', () => {
    expect(decideOnAlerts([low('v1')], 'v1', now - day + 1, day, now)).toMatchObject({
      start: false,
      reason: expect.stringMatching(/next one may start from 2026-12-05T12:00:00.001Z/) as string,
    });
    expect(decideOnAlerts([low('v1')], 'v1', now - day, day, now)).toMatchObject({ start: true });
  });
});

describe('the status record', () => {
  const run = (over: Partial<RetrainRun>): RetrainRun => ({
    trigger: 'schedule',
    outcome: 'promoted',
    reason: 'first model',
    version: 'v1',
    previous: null,
    current: 'v1',
    window: { from: '2026-06-01', to: '2026-12-01' },
    candidate: { roc_auc: 0.8, pr_auc: 0.4 },
    baseline: null,
    alert: null,
    started_ms: 1_000,
    finished_ms: 61_000,
    ...over,
  });

  it('counts runs by outcome and trigger, and keeps the success and alert times', () => {
    let s = recordRun(EMPTY_STATUS, run({}));
    s = recordRun(s, run({ trigger: 'alert', outcome: 'kept', started_ms: 100_000, finished_ms: 160_000 }));
    s = recordRun(s, run({ outcome: 'failed', reason: 'boom', started_ms: 200_000, finished_ms: 201_000 }));
    expect(s.runs).toEqual({ 'promoted:schedule': 1, 'kept:alert': 1, 'failed:schedule': 1 });
    expect(s.last_success_ms).toBe(160_000); // a failure is not a success
    expect(s.last_alert_run_ms).toBe(100_000);
    expect(s.last_run?.reason).toBe('boom');
    expect(parseStatus(JSON.stringify(s))).toEqual(s);
    expect(() => parseStatus('{"schema_version": 2}')).toThrow(/not a retrain status/);
  });

  it('gives alert annotations a one-line, bounded reason', () => {
    expect(shortReason('does not beat\n  current v1')).toBe('does not beat current v1');
    expect(shortReason('x'.repeat(400))).toHaveLength(300);
  });
});

describe('configuration', () => {
  it('takes a cron schedule or off, and refuses anything else with the reason', () => {
    expect(loadConfig({}).RETRAIN_SCHEDULE).toBe('0 3 * * 1');
    expect(loadConfig({ RETRAIN_SCHEDULE: 'off' }).RETRAIN_SCHEDULE).toBe('off');
    expect(loadConfig({ RETRAIN_SCHEDULE: '30 2 1 * *' }).RETRAIN_SCHEDULE).toBe('30 2 1 * *');
    expect(() => loadConfig({ RETRAIN_SCHEDULE: 'weekly' })).toThrow(/RETRAIN_SCHEDULE: must be a cron expression/);
  });
});

// Declaration files: a valid one parses with its defaults, and an invalid one is refused naming every problem.
import { describe, expect, it } from 'vitest';
import { activeWindow, isActive, parseExperiments } from '../../processors/experiments/definitions.js';
import { AppError } from '../../processors/runtime/errors.js';

const adExperiment = (over: Record<string, unknown> = {}) => ({
  name: 'thresholds',
  appliesTo: 'ad-decision',
  salt: 'salt-of-the-test',
  variants: [
    { name: 'control', weight: 1, control: true },
    { name: 'treatment', weight: 1, adThresholdHigh: 0.6 },
  ],
  metric: { kind: 'conversion_rate', windowDays: 7 },
  durationDays: 14,
  minimumDetectableEffect: { relative: 0.1 },
  ...over,
});

function problemsOf(doc: unknown): string {
  try {
    parseExperiments(doc, 'file.json');
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected the declaration to be refused');
}

describe('parseExperiments', () => {
  it('accepts a valid file and fills defaults', () => {
    const [e] = parseExperiments(
      {
        experiments: [
          adExperiment({ start: '2026-10-01T00:00:00Z' }),
          {
            name: 'features',
            appliesTo: 'offline-training',
            salt: 'salt-of-the-features',
            variants: [
              { name: 'rfm', weight: 1, features: ['recency_days', 'frequency_30d'] },
              { name: 'all', weight: 1, control: true, features: 'all' },
            ],
            metric: { kind: 'offline_auc' },
            durationDays: 7,
            minimumDetectableEffect: { absolute: 0.01 },
          },
        ],
      },
      'file.json',
    );
    expect(e?.variants[1]?.control).toBe(false);
    expect(activeWindow(e!)).toEqual({
      startMs: Date.parse('2026-10-01T00:00:00Z'),
      endMs: Date.parse('2026-10-15T00:00:00Z'),
    });
    expect(isActive(e!, Date.parse('2026-10-14T23:59:59Z'))).toBe(true);
    expect(isActive(e!, Date.parse('2026-10-15T00:00:00Z'))).toBe(false);
  });

  it('names every schema problem with its path', () => {
    const message = problemsOf({
      experiments: [
        adExperiment({
          name: 'Bad Name',
          salt: 'short',
          variants: [{ name: 'only', weight: 0, extra: 1 }],
          metric: { kind: 'conversion_rate' },
          durationDays: -1,
          minimumDetectableEffect: { percent: 5 },
          start: '2026-10-01',
        }),
        {
          name: 'features',
          appliesTo: 'offline-training',
          salt: 'salt-of-the-features',
          variants: [
            { name: 'a', weight: 1, features: ['recency_days', 'shoe_size'] },
            { name: 'b', weight: 1, control: true, features: [] },
          ],
          metric: { kind: 'offline_auc' },
          durationDays: 7,
          minimumDetectableEffect: { absolute: 0.01 },
        },
        { name: 'x', appliesTo: 'billboards' },
      ],
    });
    expect(message).toMatch(/^file\.json: /);
    for (const expected of [
      /experiments\.0\.name: experiment names are lowercase/,
      /experiments\.0\.salt: a salt has at least 8 characters/,
      /experiments\.0\.variants: an experiment has at least two variants/,
      /experiments\.0\.variants\.0\.weight: weights are > 0/,
      /experiments\.0\.variants\.0: Unrecognized key: "extra"/,
      /experiments\.0\.metric\.windowDays: /,
      /experiments\.0\.durationDays: /,
      /experiments\.0\.minimumDetectableEffect: either \{"relative": r\}/,
      /experiments\.0\.start: an ISO-8601 time with a zone/,
      /experiments\.1\.variants\.0\.features\.1: unknown feature "shoe_size"/,
      /experiments\.1\.variants\.1\.features: a feature set names at least one feature/,
      /experiments\.2\.appliesTo: /,
    ]) {
      expect(message).toMatch(expected);
    }
  });

  it('names every rule across fields: controls, duplicates, windows, overlapping ad experiments', () => {
    const message = problemsOf({
      experiments: [
        adExperiment({
          variants: [
            { name: 'a', weight: 1 },
            { name: 'a', weight: 1, adThresholdHigh: 0.5, adThresholdMedium: 0.6 },
          ],
        }),
        adExperiment({ start: '2026-10-01T00:00:00Z', end: '2026-09-01T00:00:00Z' }),
        adExperiment({ name: 'later', end: '2026-12-01T00:00:00Z' }),
      ],
    });
    for (const expected of [
      /experiments\.0\.variants: exactly one variant has "control": true \(found 0\)/,
      /experiments\.0\.variants\.1\.name: variant a is declared twice/,
      /experiments\.0\.variants\.1: adThresholdMedium is above adThresholdHigh/,
      /experiments\.1\.name: experiment thresholds is declared twice/,
      /experiments\.1\.end: the end is not after the start/,
      /experiments\.2\.end: an end needs a start/,
      /ad-decision experiments thresholds and later overlap in time/,
    ]) {
      expect(message).toMatch(expected);
    }
  });

  it('allows two ad experiments one after the other', () => {
    const parsed = parseExperiments(
      {
        experiments: [
          adExperiment({ name: 'first', start: '2026-10-01T00:00:00Z' }),
          adExperiment({ name: 'second', start: '2026-10-15T00:00:00Z' }),
        ],
      },
      'file.json',
    );
    expect(parsed.map((e) => e.name)).toEqual(['first', 'second']);
  });
});

// The hostile-input corpus (issue 14) through every door on the real stack: raw topics through the real pipeline,
// the command-line input files through the CLIs' readers, the prediction API. Every record is processed or refused
// with its reason as the corpus expects, nothing lost, no crash, no hang, strings stored exactly as sent.
import { describe, expect, inject, it } from 'vitest';
import { formatReport, runHostile } from '../../processors/tools/hostile.js';

describe('hostile-input corpus', () => {
  it('accounts for every one of 10,000+ hostile records through every door', { timeout: 600_000 }, async () => {
    const sizes = { raw: 6_000, files: 4_000, api: 330 };
    const report = await runHostile({ sizes, endpoints: inject('endpoints'), timeoutMs: 400_000 });
    console.log(formatReport(report).join('\n'));
    expect(report.problems).toEqual([]);
    const doors = Object.values(report.doors);
    const sent = (name: string) => report.doors[name]?.sent ?? 0;
    expect(
      sent('raw topics → identity-resolver') +
        sent('FEBRL file (identity:eval, identity:train, replay febrl)') +
        sent('Online Retail file (replay online-retail)') +
        sent('prediction API'),
    ).toBeGreaterThanOrEqual(10_000);
    for (const d of doors) {
      expect(d.processed + d.deadLettered + d.skipped + d.lost).toBe(d.sent);
      expect({ lost: d.lost, misjudged: d.misjudged, crashes: d.crashes, hangs: d.hangs }).toEqual({
        lost: 0,
        misjudged: 0,
        crashes: 0,
        hangs: 0,
      });
    }
    for (const name of ['raw topics → identity-resolver', 'raw topics → warehouse-sink']) {
      const d = report.doors[name];
      expect(d?.sent).toBe(6_000);
      expect(d && d.processed > 1_000 && d.deadLettered > 2_000).toBe(true);
    }
    expect(report.stringsChecked).toBeGreaterThan(500);
    expect(report.stringsAltered).toBe(0);
    expect(report.afterCorpusMissing).toBe(0);
    expect(report.doors['prediction API']?.byReason).toEqual(
      expect.objectContaining({ '413 (oversized body)': 30, '400 (malformed JSON)': 30, '401 (missing key)': 30 }),
    );
  });
});

// When the feature processor flushes: at once while caught up (latency), in batches of FEATURES_FLUSH_MAX_RECORDS
// while behind (a customer with several waiting events is written and scored once), never later than the behind bound.
import { describe, expect, it } from 'vitest';
import { flushDue } from '../../processors/features/processor.js';

const base = { buffered: 300, bufferedForMs: 5, waitingInKafka: 0, maxRecords: 10_000, behindMaxMs: 2_000 };

describe('flushDue', () => {
  it('flushes at once while caught up, whatever little was folded', () => {
    expect(flushDue(base)).toBe(true);
    expect(flushDue({ ...base, buffered: 1, waitingInKafka: 2_499 })).toBe(true);
  });

  it('waits for a full flush while behind', () => {
    expect(flushDue({ ...base, waitingInKafka: 2_500 })).toBe(false);
    expect(flushDue({ ...base, buffered: 9_999, waitingInKafka: 500_000, bufferedForMs: 1_999 })).toBe(false);
    expect(flushDue({ ...base, buffered: 10_000, waitingInKafka: 500_000 })).toBe(true);
  });

  it('flushes while behind once the first folded record waited the bound', () => {
    expect(flushDue({ ...base, waitingInKafka: 500_000, bufferedForMs: 2_000 })).toBe(true);
  });

  it('flushes work that came without records (merges, rescoring) at once', () => {
    expect(flushDue({ ...base, buffered: 0, waitingInKafka: 500_000 })).toBe(true);
  });
});

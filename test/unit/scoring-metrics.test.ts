import { describe, expect, it } from 'vitest';
import { prAuc, quintileScores, rocAuc } from '../../processors/scoring/metrics.js';

describe('evaluation metrics', () => {
  it('computes ROC-AUC as the probability a positive outranks a negative, ties counting half', () => {
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75); // sklearn's example
    expect(rocAuc([1, 2, 3], [0, 1, 1])).toBe(1);
    expect(rocAuc([3, 2, 1], [0, 1, 1])).toBe(0);
    expect(rocAuc([5, 5, 5, 5], [0, 1, 0, 1])).toBe(0.5);
    expect(rocAuc([1, 2], [1, 1])).toBeNaN();
  });

  it('computes PR-AUC as average precision', () => {
    expect(prAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.8333333333, 9); // sklearn's example
    expect(prAuc([3, 2, 1], [1, 0, 0])).toBe(1);
    expect(prAuc([1, 1, 1, 1], [1, 0, 0, 0])).toBe(0.25);
  });

  it('scores quintiles from nearest-rank cut points', () => {
    expect(quintileScores([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).toEqual([1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    expect(quintileScores([7, 7, 7])).toEqual([1, 1, 1]);
  });
});

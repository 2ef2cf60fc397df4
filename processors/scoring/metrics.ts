/** Ranking metrics for evaluations: ROC-AUC (ties count half) and PR-AUC as average precision. Pure. */

/** ROC-AUC by the rank-sum (Mann–Whitney) statistic with average ranks for ties; NaN without both classes. */
export function rocAuc(scores: readonly number[], labels: readonly number[]): number {
  const order = scores.map((s, i) => [s, labels[i] ?? 0] as const).sort((a, b) => a[0] - b[0]);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j < order.length && order[j]?.[0] === order[i]?.[0]) j++;
    const averageRank = (i + 1 + j) / 2; // ranks i+1 … j share their mean
    for (let k = i; k < j; k++) {
      if (order[k]?.[1]) {
        positives++;
        rankSum += averageRank;
      }
    }
    i = j;
  }
  const negatives = order.length - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Average precision: mean of the precision at each positive, tied scores taken as one threshold. */
export function prAuc(scores: readonly number[], labels: readonly number[]): number {
  const order = scores.map((s, i) => [s, labels[i] ?? 0] as const).sort((a, b) => b[0] - a[0]);
  const positives = order.filter(([, l]) => l).length;
  if (positives === 0) return NaN;
  let tp = 0;
  let seen = 0;
  let ap = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    let tiedPositives = 0;
    while (j < order.length && order[j]?.[0] === order[i]?.[0]) {
      if (order[j]?.[1]) tiedPositives++;
      j++;
    }
    tp += tiedPositives;
    seen = j;
    ap += (tiedPositives / positives) * (tp / seen);
    i = j;
  }
  return ap;
}

/** 1..5 quintile scores of `values` (nearest-rank cut points over the values themselves); higher value, higher score. */
export function quintileScores(values: readonly number[]): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  const cut = (p: number) => sorted[Math.max(0, Math.ceil((p * sorted.length) / 100) - 1)] ?? 0;
  const cuts = [20, 40, 60, 80].map(cut);
  return values.map((v) => 1 + cuts.filter((c) => v > c).length);
}

/**
 * Record headers shared between processors. `patternos.source` rides on every resolved record: the
 * `<raw topic>:<partition>:<offset>` of the raw record it re-keys, so the feature processor's watermarks survive the
 * resolver publishing a batch twice (a crash between its send and its commit gives the copies new offsets).
 */
export const SOURCE_HEADER = 'patternos.source';

/**
 * `patternos.lane: fast` rides on a resolved record the resolver published ahead of graph work still running for
 * records before it in the same raw partition (identity/processor.ts startRound). Such a record may overtake earlier
 * ones that end up under the same global id, so the feature processor keeps its own watermark for them: a record's
 * stream is its published key and its lane.
 */
export const LANE_HEADER = 'patternos.lane';
export const FAST_LANE = 'fast';

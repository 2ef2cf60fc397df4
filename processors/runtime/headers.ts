/**
 * Record headers shared between processors. `patternos.source` rides on every resolved record: the
 * `<raw topic>:<partition>:<offset>` of the raw record it re-keys, so the feature processor's watermarks survive the
 * resolver publishing a batch twice (a crash between its send and its commit gives the copies new offsets).
 */
export const SOURCE_HEADER = 'patternos.source';

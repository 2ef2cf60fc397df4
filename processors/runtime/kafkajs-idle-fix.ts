/**
 * A fix for a kafkajs 2.2.4 defect that burns CPU in every process using it, applied once when runtime/kafka.ts (the
 * one kafkajs importer) loads.
 *
 * Every broker connection has a RequestQueue. After any request completes it calls `scheduleCheckPendingRequests`,
 * which, with nothing pending and no throttle (`throttledUntil` is -1), schedules `setTimeout(check, negative)`, i.e.
 * 1 ms; the check schedules the next one, forever (kafkajs issues #1556, #1604, #1704; the fixes were never released,
 * and kafkajs is frozen). Measured here: an idle prediction API process spent ~7.5 % of a core on it, and each
 * processor pays it once per connection, on a 2-core machine shared with Kafka and Redis.
 *
 * The check is only needed while requests wait (they are also checked whenever an in-flight request completes) or a
 * broker throttle is running; otherwise there is nothing to do, so nothing is scheduled. `push` schedules again as
 * soon as a request has to wait.
 */
import { createRequire } from 'node:module';

interface RequestQueueInternals {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests: (this: RequestQueueInternals) => void;
}

const require = createRequire(import.meta.url);
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
  prototype: RequestQueueInternals & { __patternosIdleFix?: true };
};

/** Applies the fix once; `KAFKAJS_IDLE_FIX=off` leaves kafkajs as released (to measure what the fix is worth). */
export function applyKafkajsIdleFix(env: NodeJS.ProcessEnv = process.env): void {
  const proto = RequestQueue.prototype;
  if (proto.__patternosIdleFix || env['KAFKAJS_IDLE_FIX'] === 'off') return;
  const original = proto.scheduleCheckPendingRequests;
  proto.scheduleCheckPendingRequests = function (this: RequestQueueInternals) {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
    original.call(this);
  };
  proto.__patternosIdleFix = true;
}

/** The RequestQueue class, for the test that checks the fix. */
export const kafkajsRequestQueue = RequestQueue as unknown as new (options: Record<string, unknown>) => {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
};

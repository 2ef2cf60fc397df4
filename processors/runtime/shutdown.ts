import type { Logger } from './log.js';

/**
 * Runs `close` once on SIGTERM or SIGINT (consumer stop and flush, then clients), then exits. A second signal exits at
 * once; nothing is lost either way because offsets only move after the data is stored.
 */
export function onShutdown(log: Logger, close: () => Promise<void>): void {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) process.exit(1);
    closing = true;
    log.info('shutting down', { signal });
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/**
 * One step of a stop (a client's disconnect), waited for at most `ms`. A step that does not finish by then is logged
 * and left behind, so a stop always ends: kafkajs' disconnect waits for the consumer's running batch and fetch, and a
 * stop that never returns leaves a process alive and idle (seen once: the identity-merges follower's disconnect).
 */
export async function boundedStep(log: Logger, what: string, step: () => Promise<void>, ms = 15_000): Promise<void> {
  if ((await within(step, ms)) === 'late')
    log.warn('a stop step did not finish in time; going on without it', { step: what, ms });
}

/** Runs `step` and waits for it at most `ms`: 'late' when it had not settled by then (a rejection is thrown). */
export async function within(step: () => Promise<void>, ms: number): Promise<'done' | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => {
      resolve('late');
    }, ms);
  });
  try {
    return await Promise.race([step().then(() => 'done' as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

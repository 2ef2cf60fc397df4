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

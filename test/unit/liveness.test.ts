import { describe, expect, it } from 'vitest';
import { exitOnFatal, type FatalFailure } from '../../processors/runtime/liveness.js';
import { createLogger } from '../../processors/runtime/log.js';

const failure: FatalFailure = { kind: 'crash', reason: 'test', error: new Error('test') };
const log = createLogger('error', { test: 'liveness' });
const silent = { ...log, error: () => undefined };

describe('exitOnFatal', () => {
  it('exits with 1 once the shutdown is done, and runs it once for repeated reports', async () => {
    const codes: number[] = [];
    let closes = 0;
    const onFatal = exitOnFatal(
      silent,
      () => {
        closes++;
        return Promise.resolve();
      },
      {
        exit: (code) => {
          codes.push(code);
        },
      },
    );
    onFatal(failure);
    onFatal(failure);
    await new Promise((r) => setTimeout(r, 10));
    expect(codes).toEqual([1]);
    expect(closes).toBe(1);
  });

  it('exits with 1 when the shutdown fails or hangs past its bound', async () => {
    const codes: number[] = [];
    exitOnFatal(silent, () => Promise.reject(new Error('broker gone')), { exit: (c) => void codes.push(c) })(failure);
    exitOnFatal(silent, () => new Promise(() => undefined), { timeoutMs: 50, exit: (c) => void codes.push(c) })(
      failure,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(codes).toEqual([1, 1]);
  });
});

import { describe, expect, it } from 'vitest';
import { createLogger } from '../../processors/runtime/log.js';
import { boundedStep } from '../../processors/runtime/shutdown.js';

describe('a stop step', () => {
  it('is waited for when it finishes', async () => {
    let done = false;
    await boundedStep(createLogger('error'), 'quick', async () => {
      await new Promise((r) => setTimeout(r, 10));
      done = true;
    });
    expect(done).toBe(true);
  });

  it('is left behind when it never finishes, so the stop ends', async () => {
    let ended = false;
    await boundedStep(createLogger('error'), 'stuck', () => new Promise<void>(() => undefined), 50).then(() => {
      ended = true;
    });
    expect(ended).toBe(true); // without the bound this await never returns and the test times out
  });
});

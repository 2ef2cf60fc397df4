import { describe, expect, it } from 'vitest';
import { heldResources, hold, releaseAll } from '../../processors/tools/interrupt.js';

describe('hold / releaseAll', () => {
  it('releases what is still held newest first, goes on past a failure and a late release, and forgets released', async () => {
    const order: string[] = [];
    const report: string[] = [];
    hold('run', () => {
      order.push('run');
      return Promise.resolve();
    });
    const unholdDone = hold('done early', () => {
      order.push('done early');
      return Promise.resolve();
    });
    hold('failing', () => Promise.reject(new Error('broker gone')));
    hold('late', () => new Promise<void>(() => undefined)); // never settles
    hold('parts', () => {
      order.push('parts');
      return Promise.resolve();
    });
    unholdDone(); // released by the command itself: not again
    expect(heldResources()).toEqual(['run', 'failing', 'late', 'parts']);

    await releaseAll(50, (line) => report.push(line));
    expect(order).toEqual(['parts', 'run']);
    expect(report).toEqual([
      'could not release late within 0.05 s; left behind',
      'could not release failing: broker gone',
    ]);
    expect(heldResources()).toEqual([]);
  });
});

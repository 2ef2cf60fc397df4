// graph-model.ts's journal on its own (no Redis): a part of many identities becomes picture-write.lua's commands
// whole. (The model against the real scripts: test/integration/identity-graph-model.test.ts.)
import { describe, expect, it } from 'vitest';
import { GraphModel } from '../../processors/identity/graph-model.js';

describe('GraphModel journal', () => {
  it('takes the writes of a part of 100,000 new identities as commands', () => {
    const model = new GraphModel({ journal: true });
    const n = 100_000;
    for (let i = 0; i < n; i++) model.register(`p:${i}`, `{"n":${i}}`, '', '', 100, `e${i}`, '1', '', '0', ['b0']);
    const commands = model.takeWrites();
    // Each hash's fields as one H command: its field-value pairs follow the count.
    const at = commands.findIndex((c, i) => c === 'H' && commands[i + 1] === 'rec');
    expect(commands[at + 2]).toBe(String(2 * n));
    expect(commands.slice(at + 3, at + 5)).toEqual(['p:0', '{"n":0}']);
    const block = commands.findIndex((c, i) => c === 'S' && commands[i + 1] === 'blk:b0');
    expect(commands[block + 2]).toBe(String(n));
    expect(model.takeWrites()).toEqual([]); // taken once
  });
});

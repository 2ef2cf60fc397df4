import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROCESSOR_NODE_FLAGS } from '../../processors/runtime/node-flags.js';

const scripts = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;

describe('stream processors run with the same node flags everywhere', () => {
  it.each(['start:feature-processor', 'start:identity-resolver', 'start:warehouse-sink', 'demo', 'bench', 'chaos'])(
    '%s passes every processor flag to node',
    (name) => {
      const words = (scripts[name] ?? '').split(/\s+/);
      expect(words[0]).toBe('tsx');
      for (const flag of PROCESSOR_NODE_FLAGS) expect(words).toContain(flag);
    },
  );

  it('the flags are ones this node accepts', () => {
    for (const flag of PROCESSOR_NODE_FLAGS)
      expect(process.allowedNodeEnvironmentFlags.has(flag.split('=')[0] ?? '')).toBe(true);
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedPath, renderTypes } from '../../schemas/codegen.js';
import { loadSchema } from '../../schemas/catalog.js';
import { loadConfig } from '../../processors/runtime/config.js';

describe('contracts', () => {
  it('generated TypeScript types match schemas/avro (run `npm run schemas:generate` after editing a schema)', () => {
    expect(readFileSync(generatedPath, 'utf8')).toBe(renderTypes());
  });

  it('declares IdentityAttributes identically wherever it is inlined', () => {
    const identityOf = (s: Record<string, unknown>) =>
      JSON.stringify((s['fields'] as { name: string; type: unknown }[]).find((f) => f.name === 'identity')?.type);
    expect(identityOf(loadSchema('transaction'))).toBe(identityOf(loadSchema('behaviorEvent')));
  });

  it('every event contract has eventId and eventTimeMs', () => {
    for (const name of [
      'transaction',
      'behaviorEvent',
      'identityLink',
      'identityMerge',
      'intentScore',
      'deadLetter',
    ] as const) {
      const fields = (loadSchema(name)['fields'] as { name: string }[]).map((f) => f.name);
      expect(fields.slice(0, 2)).toEqual(['eventId', 'eventTimeMs']);
    }
  });
});

describe('config', () => {
  it('reports every problem at once and hides secrets', () => {
    expect(() => loadConfig({ SINK_MAX_ROWS: '0', CLICKHOUSE_URL: 'nope' })).toThrow(
      /CLICKHOUSE_URL.*SINK_MAX_ROWS|SINK_MAX_ROWS.*CLICKHOUSE_URL/,
    );
    const config = loadConfig({ CLICKHOUSE_PASSWORD: 'hunter22', KAFKA_BROKERS: 'a:1, b:2' });
    expect(JSON.stringify(config)).not.toContain('hunter22');
    expect(config.CLICKHOUSE_PASSWORD.reveal()).toBe('hunter22');
    expect(config.KAFKA_BROKERS).toEqual(['a:1', 'b:2']);
  });
});

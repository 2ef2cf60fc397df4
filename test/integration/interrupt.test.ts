// An interrupted command leaves nothing of its scratch run: a real process holding real topics, keys and a database.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createClickHouse } from '../../processors/runtime/clickhouse.js';
import { createTestContext, type TestContext } from '../helpers/context.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  if (!ctx) return; // beforeAll failed: its error is the one to read
  await ctx.close();
});

async function databaseExists(name: string): Promise<boolean> {
  // ClickHouse 18.16 has no query parameters: the name is a scratch run's (letters, digits, underscores), checked.
  if (!/^\w+$/.test(name)) throw new Error(`unexpected database name ${name}`);
  const clickhouse = createClickHouse(ctx.config, { database: null });
  const result = await clickhouse.query({
    query: `SELECT count() AS n FROM system.databases WHERE name = '${name}'`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ n: string | number }>();
  await clickhouse.close();
  return Number(rows[0]?.n ?? 0) > 0;
}

describe('releaseOnInterrupt', () => {
  it('removes a scratch run on SIGINT: topics, Redis keys and database gone, exit code 130', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/interrupted-run.ts', JSON.stringify(inject('endpoints'))],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => {
        resolve(code);
      });
    });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      void exited.then((code) => {
        reject(new Error(`fixture exited with ${code} before opening its run: ${stderr}`));
      });
    });
    const held = JSON.parse(line) as { prefix: string; database: string; topics: string[] };

    const redis = new Redis(ctx.config.REDIS_URL);
    try {
      // Everything is there while the command runs…
      const before = new Set(await ctx.admin.listTopics());
      expect(held.topics.length).toBeGreaterThan(0);
      expect(held.topics.every((t) => before.has(t))).toBe(true);
      expect(await redis.exists(`${held.prefix}marker`)).toBe(1);
      expect(await databaseExists(held.database)).toBe(true);

      // …and nothing once it was interrupted.
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(stderr).toContain('SIGINT: releasing scratch run interrupted-');
      const after = new Set(await ctx.admin.listTopics());
      expect(held.topics.filter((t) => after.has(t))).toEqual([]);
      expect(await redis.exists(`${held.prefix}marker`)).toBe(0);
      expect(await databaseExists(held.database)).toBe(false);
    } finally {
      redis.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        // A failed expectation above: still let the fixture remove its run, then make sure it is gone.
        child.kill('SIGINT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
        child.kill('SIGKILL');
      }
    }
  }, 120_000);
});

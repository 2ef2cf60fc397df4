// The alert rules as Prometheus reads them: `promtool check rules` accepts the file, and `promtool test rules` runs
// test/prometheus/alerts.test.yml (each alert fires on the series it is about and stays quiet on healthy ones).
// promtool comes with Debian's prometheus package, which the local stack installs with its Prometheus.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prometheusConfig, scrapeTargets } from '../../processors/tools/stack/services/prometheus.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RULES = join(ROOT, 'processors', 'monitoring', 'prometheus', 'alerts.yml');

function promtool(...args: string[]) {
  const run = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool not runnable (npm run stack -- up installs it): ${run.error.message}`);
  return { status: run.status, out: `${run.stdout}\n${run.stderr}` };
}

describe('alert rules', () => {
  it('are valid Prometheus rules, eight of them', () => {
    const { status, out } = promtool('check', 'rules', RULES);
    expect(status, out).toBe(0);
    expect(out).toMatch(/SUCCESS: 8 rules found/);
  });

  it('pass their promtool unit tests', () => {
    const { status, out } = promtool('test', 'rules', join(ROOT, 'test', 'prometheus', 'alerts.test.yml'));
    expect(status, out).toBe(0);
    expect(out).toMatch(/SUCCESS/);
  });

  it('are loaded by the local stack’s Prometheus config and by docker-compose’s, which scrape the same targets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'patternos-prometheus-'));
    try {
      const generated = join(dir, 'prometheus.yml');
      writeFileSync(generated, prometheusConfig(RULES, scrapeTargets({})));
      const local = promtool('check', 'config', generated);
      expect(local.status, local.out).toBe(0);
      expect(local.out).toMatch(/SUCCESS: 8 rules found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const composeFile = join(ROOT, 'processors', 'monitoring', 'prometheus', 'prometheus.compose.yml');
    const compose = promtool('check', 'config', composeFile);
    expect(compose.status, compose.out).toBe(0);
    expect(compose.out).toMatch(/SUCCESS: 8 rules found/);
    const text = readFileSync(composeFile, 'utf8');
    const jobs = [...text.matchAll(/job_name: (\S+)\s+static_configs:\s+- targets: \['([^']+)'\]/g)].map((m) => [
      m[1],
      m[2],
    ]);
    expect(Object.fromEntries(jobs)).toEqual(scrapeTargets({}));
  });
});

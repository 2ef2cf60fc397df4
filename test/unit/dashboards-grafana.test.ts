// Grafana's copies of the dashboards, checked as far as a machine without Docker allows: the committed JSON is what
// grafana.ts generates (so its SQL is the named queries'), it parses, its layout fits Grafana's 24-column grid without
// overlaps, every target names a provisioned data source, and every Prometheus metric it reads is one this project
// serves. Whether Grafana 12 and the ClickHouse plugin render it is not checked here (see README).
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listNamedQueries } from '../../clickhouse/queries.js';
import {
  CLICKHOUSE_UID,
  GRAFANA_DIR,
  PROMETHEUS_UID,
  grafanaDashboards,
  grafanaFileText,
} from '../../processors/dashboards/grafana.js';
import { DASHBOARD_PAGES } from '../../processors/dashboards/pages.js';

const dir = (sub: string) => fileURLToPath(new URL(sub, GRAFANA_DIR));
const generated = grafanaDashboards();

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { type: string; uid: string };
  targets: { refId: string; datasource: { type: string; uid: string }; rawSql?: string; expr?: string }[];
}

describe('Grafana dashboards', () => {
  it('the committed files are exactly what grafana.ts generates (npm run dashboards -- grafana)', () => {
    const files = readdirSync(dir('dashboards/'))
      .filter((f) => f.endsWith('.json'))
      .sort();
    expect(files).toEqual([...generated.keys()].sort());
    for (const [file, model] of generated) {
      expect(readFileSync(dir(`dashboards/${file}`), 'utf8'), file).toBe(grafanaFileText(model));
    }
  });

  it('one dashboard per page, with unique uids and the pages’ titles', () => {
    const models = [...generated.values()];
    expect(new Set(models.map((m) => m['uid'])).size).toBe(DASHBOARD_PAGES.length);
    expect(models.map((m) => m['title'])).toEqual(DASHBOARD_PAGES.map((p) => `PatternOS · ${p.title}`));
    for (const m of models) {
      expect(m['uid']).toMatch(/^[a-z0-9-]{1,40}$/); // Grafana's uid limit
      expect(typeof m['schemaVersion']).toBe('number');
      expect(m['refresh']).toBe('30s');
    }
  });

  it('panels fit the 24-column grid without overlapping, with unique ids', () => {
    for (const [file, model] of generated) {
      const panels = model['panels'] as Panel[];
      expect(new Set(panels.map((p) => p.id)).size, file).toBe(panels.length);
      const taken = new Set<string>();
      for (const p of panels) {
        const { x, y, w, h } = p.gridPos;
        expect(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${file}: ${p.title}`).toBe(true);
        for (let i = x; i < x + w; i++) {
          for (let j = y; j < y + h; j++) {
            expect(taken.has(`${i},${j}`), `${file}: ${p.title} overlaps at ${i},${j}`).toBe(false);
            taken.add(`${i},${j}`);
          }
        }
      }
    }
  });

  it('every target reads a provisioned data source; ClickHouse SQL is one statement, named queries verbatim', () => {
    const provisioned = readFileSync(dir('provisioning/datasources/patternos.yml'), 'utf8');
    const uids = [...provisioned.matchAll(/^\s+uid: (\S+)$/gm)].map((m) => m[1]);
    expect(uids.sort()).toEqual([CLICKHOUSE_UID, PROMETHEUS_UID].sort());
    expect(provisioned).toMatch(/type: grafana-clickhouse-datasource/);
    const namedSql = new Set(listNamedQueries().map((q) => q.sql));
    let fromNamed = 0;
    for (const [file, model] of generated) {
      for (const p of model['panels'] as Panel[]) {
        expect(p.targets, `${file}: ${p.title}`).toHaveLength(1);
        const [t] = p.targets;
        expect(t!.datasource).toEqual(p.datasource);
        if (t!.datasource.uid === CLICKHOUSE_UID) {
          expect(t!.datasource.type).toBe('grafana-clickhouse-datasource');
          expect(t!.rawSql).toMatch(/^SELECT\b/);
          expect(t!.rawSql).not.toMatch(/;\s*$/);
          if (namedSql.has(t!.rawSql!)) fromNamed++;
        } else {
          expect(t!.datasource).toEqual({ type: 'prometheus', uid: PROMETHEUS_UID });
          expect(t!.expr).toBeTruthy();
        }
      }
    }
    expect(fromNamed).toBeGreaterThanOrEqual(10);
  });

  it('every Prometheus metric a panel reads is registered by this project', () => {
    const sources = [
      readFileSync(new URL('../../processors/monitoring/app.ts', import.meta.url), 'utf8'),
      readFileSync(new URL('../../processors/dashboards/plugin.ts', import.meta.url), 'utf8'),
    ].join('\n');
    const exprs = [...generated.values()].flatMap((m) =>
      (m['panels'] as Panel[]).flatMap((p) => p.targets.map((t) => t.expr ?? '')).filter((e) => e !== ''),
    );
    expect(exprs.length).toBeGreaterThanOrEqual(4);
    const functions = new Set(['sort_desc', 'topk']);
    for (const expr of exprs) {
      for (const [metric] of expr.matchAll(/[a-z_][a-z0-9_]*/g)) {
        if (functions.has(metric)) continue;
        expect(sources, `${expr}: ${metric}`).toContain(`name: '${metric}'`);
      }
    }
  });
});

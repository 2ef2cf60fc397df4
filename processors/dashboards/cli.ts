/**
 * `npm run dashboards -- <command>`:
 *
 *   screenshot <dir> [--url <api>]   opens each dashboard in headless chromium, writes <dir>/<page>.png (1366 px
 *                                    wide, the whole page), and reports any page that errs or chart without data
 *   check [--url <api>]              the same without pictures
 *   grafana                          rewrites processors/dashboards/grafana/dashboards/*.json from grafana.ts (run it
 *                                    after changing a named query the Grafana dashboards use)
 *
 * The API defaults to http://API_HOST:API_PORT (what `npm run demo` leaves running). Chromium is Debian's, installed
 * on first use (root), or CHROMIUM_PATH. `check` exits 0 when every page loaded with data in every chart and nothing
 * was logged as an error, 1 otherwise; `screenshot` lists the same problems but exits 1 only when a page could not be
 * photographed (a young warehouse legitimately has charts without data: no monitored day yet, say). 2 on bad
 * arguments. The last line is one JSON object.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../runtime/config.js';
import { checkDashboards, ensureChromium, launchBrowser, problemsOf } from './browser.js';
import { GRAFANA_DIR, grafanaDashboards, grafanaFileText } from './grafana.js';

const USAGE =
  'usage: npm run dashboards -- screenshot <dir> [--url http://127.0.0.1:18080] | check [--url …] | grafana';

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { url: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const [command, dir, ...extra] = parsed.positionals;
  if (parsed.values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !parsed.values.help ? 2 : 0;
  }
  if (command === 'grafana' && dir === undefined) {
    const folder = fileURLToPath(new URL('./dashboards/', GRAFANA_DIR));
    await mkdir(folder, { recursive: true });
    for (const [file, model] of grafanaDashboards()) {
      await writeFile(resolve(folder, file), grafanaFileText(model));
      console.log(`wrote ${resolve(folder, file)}`);
    }
    return 0;
  }
  if (
    !(command === 'screenshot' && dir !== undefined && extra.length === 0) &&
    !(command === 'check' && dir === undefined)
  ) {
    console.error(USAGE);
    return 2;
  }
  const config = loadConfig();
  const host = config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST;
  const url = (parsed.values.url ?? `http://${host}:${config.API_PORT}`).replace(/\/$/, '');
  try {
    await fetch(`${url}/health`);
  } catch (err) {
    console.error(
      `the API does not answer at ${url} (${String((err as Error).cause ?? err)}): start it (npm run start:api, or npm run demo) or pass --url`,
    );
    return 1;
  }
  const browser = await launchBrowser(await ensureChromium());
  try {
    const checks = await checkDashboards(
      browser,
      url,
      command === 'screenshot' ? { screenshotDir: resolve(dir ?? '.') } : {},
    );
    const problems = checks.flatMap(problemsOf);
    for (const c of checks) {
      const charts = c.charts.map((ch) => `${ch.id} ${ch.seriesPoints.join('+')}`).join(', ');
      console.log(
        `${c.page.title}: ${c.url} HTTP ${c.status}; charts: ${charts}${c.screenshot ? `; ${c.screenshot}` : ''}`,
      );
    }
    for (const p of problems) console.log(`problem: ${p}`);
    console.log(
      JSON.stringify({
        dashboards: checks.map((c) => ({
          page: c.page.slug,
          url: c.url,
          status: c.status,
          charts: c.charts.length,
          screenshot: c.screenshot ?? null,
        })),
        problems,
      }),
    );
    if (command === 'screenshot') return checks.every((c) => c.status === 200 && c.screenshot) ? 0 : 1;
    return problems.length === 0 ? 0 : 1;
  } finally {
    await browser.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`dashboards failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);

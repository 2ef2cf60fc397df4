/**
 * The headless browser that looks at the dashboards (`npm run dashboards -- screenshot`, the integration test):
 * Debian's chromium, installed on first use the way the local stack installs its Debian packages, driven by
 * puppeteer-core (which downloads no browser of its own).
 */
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { installAptBinary, which } from '../tools/stack/services/common.js';
import { DASHBOARD_PAGES, type DashboardPage } from './pages.js';

/**
 * The chromium to drive: CHROMIUM_PATH when set, else one on PATH, else Debian's `chromium` installed now (root only;
 * anyone else is told the package to install).
 */
export async function ensureChromium(
  env: NodeJS.ProcessEnv = process.env,
  log: (line: string) => void = (line) => {
    process.stderr.write(`${line}\n`);
  },
): Promise<string> {
  const configured = env['CHROMIUM_PATH'];
  if (configured) {
    const found = configured.includes('/') ? await executable(configured) : await which(configured, env);
    if (!found) throw new Error(`CHROMIUM_PATH=${configured} is not an executable file`);
    return found;
  }
  const { path } = await installAptBinary(['chromium', 'chromium-browser'], 'chromium', {
    env,
    log: (line) => {
      log(`dashboards: ${line} (the headless browser, first use only)`);
    },
    otherwise: 'set CHROMIUM_PATH to a Chromium or Chrome you installed yourself',
  });
  return path;
}

async function executable(path: string): Promise<string | undefined> {
  try {
    await access(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

/** Starts headless chromium. Root (containers, this project's machines) needs --no-sandbox. */
export async function launchBrowser(executablePath: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath,
    headless: true,
    args: [
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      '--disable-dev-shm-usage', // containers give /dev/shm 64 MB, too little for a renderer
      '--disable-gpu',
      '--no-first-run',
      '--no-default-browser-check',
    ],
  });
}

/** What a page looked like once its first data arrived. */
export interface PageCheck {
  readonly page: DashboardPage;
  readonly url: string;
  /** HTTP status of the page itself. */
  readonly status: number;
  /** Console messages of type error, uncaught exceptions and failed requests, in order. */
  readonly errors: readonly string[];
  /** Every chart on the page: its id, title and the number of data points of each of its series. */
  readonly charts: readonly { id: string; title: string; seriesPoints: number[] }[];
  /** The page's headline numbers (`[data-kpi]` elements) as shown. */
  readonly kpis: Readonly<Record<string, string>>;
  /** Where the screenshot was written, when one was asked for. */
  readonly screenshot?: string;
}

/** The laptop screen the pages are laid out for and photographed on. */
export const LAPTOP_VIEWPORT = { width: 1366, height: 768 } as const;

/**
 * Opens each dashboard page of the API at `baseUrl`, waits until its data is drawn (or the page reports a failure),
 * and returns what it shows; with `screenshotDir`, writes `<page>.png` of the whole page there.
 */
export async function checkDashboards(
  browser: Browser,
  baseUrl: string,
  options: { screenshotDir?: string; timeoutMs?: number; pages?: readonly DashboardPage[] } = {},
): Promise<PageCheck[]> {
  if (options.screenshotDir) await mkdir(options.screenshotDir, { recursive: true });
  const results: PageCheck[] = [];
  for (const page of options.pages ?? DASHBOARD_PAGES) {
    const tab = await browser.newPage();
    const errors: string[] = [];
    tab.on('console', (message) => {
      if (message.type() === 'error') errors.push(`console: ${message.text()}`);
    });
    tab.on('pageerror', (err) => {
      errors.push(`uncaught: ${err instanceof Error ? err.message : String(err)}`);
    });
    tab.on('requestfailed', (request) => {
      errors.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`);
    });
    try {
      await tab.setViewport(LAPTOP_VIEWPORT);
      const url = `${baseUrl}/dashboards/${page.slug}`;
      const response = await tab.goto(url, { waitUntil: 'load', timeout: options.timeoutMs ?? 60_000 });
      // The page script sets data-state once the first refresh is drawn ('ready') or has failed ('error').
      await tab.waitForSelector('body[data-state="ready"], body[data-state="error"]', {
        timeout: options.timeoutMs ?? 60_000,
      });
      const shown = (await tab.evaluate(PAGE_PROBE)) as {
        charts: { id: string; title: string; seriesPoints: number[] }[];
        kpis: Record<string, string>;
        failure?: string;
      };
      if (shown.failure) errors.push(`page: ${shown.failure}`);
      let screenshot: `${string}.png` | undefined;
      if (options.screenshotDir) {
        screenshot = `${join(options.screenshotDir, page.slug)}.png`;
        await tab.screenshot({ path: screenshot, fullPage: true });
      }
      results.push({
        page,
        url,
        status: response?.status() ?? 0,
        errors,
        charts: shown.charts,
        kpis: shown.kpis,
        ...(screenshot ? { screenshot } : {}),
      });
    } finally {
      await tab.close();
    }
  }
  return results;
}

/**
 * Runs in the page (a string: this project compiles without the DOM's types): each [data-chart] element's ECharts
 * instance and the number of points of each of its series (a sankey's flows are its links), the [data-kpi] texts, and
 * the failure the page script reported, if any.
 */
const PAGE_PROBE = `(() => {
  const charts = [...document.querySelectorAll('[data-chart]')].map((el) => {
    const instance = window.echarts.getInstanceByDom(el);
    const series = (instance && instance.getOption().series) || [];
    return {
      id: el.dataset.chart,
      title: (el.closest('section')?.querySelector('h2')?.textContent) || '',
      seriesPoints: series.map((s) => (s.links || s.data || []).length),
    };
  });
  const kpis = {};
  for (const el of document.querySelectorAll('[data-kpi]')) kpis[el.dataset.kpi] = el.textContent;
  const failure = document.body.dataset.state === 'error' ? document.body.dataset.error : undefined;
  return { charts, kpis, failure };
})()`;

/** The problems of a check, one line each: an HTTP error, console errors, a chart without data. Empty = all good. */
export function problemsOf(check: PageCheck): string[] {
  const problems: string[] = [];
  if (check.status !== 200) problems.push(`${check.page.slug}: HTTP ${check.status}`);
  for (const e of check.errors) problems.push(`${check.page.slug}: ${e}`);
  if (check.charts.length === 0) problems.push(`${check.page.slug}: no chart on the page`);
  for (const c of check.charts) {
    if (c.seriesPoints.length === 0 || c.seriesPoints.some((n) => n === 0)) {
      problems.push(`${check.page.slug}: chart ${c.id} (${c.title}) has no data [${c.seriesPoints.join(', ')}]`);
    }
  }
  return problems;
}

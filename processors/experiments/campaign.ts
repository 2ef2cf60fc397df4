/**
 * `npm run experiment -- campaign online-retail <file> --from <day> --size 5000`: the seed's campaign check on real
 * data. The file's history before the day goes through the real pipeline (processors/scoring/evaluate.ts, as
 * `npm run eval -- online-retail` does), a model is trained on that history alone into a scratch model registry (the
 * deployment's models are not touched, and no model trained on other data scores this file), and the scores held at
 * 00:00 of the day pick the treatment; outcomes are the file's own non-cancelled invoices in the 7 and 14 days after.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAY_MS } from '../features/definitions.js';
import { AppError } from '../runtime/errors.js';
import { evaluateOnlineRetail, iso, purchaseHistory, readTransactions } from '../scoring/evaluate.js';
import { campaignCheck, type CampaignCustomer, type CampaignResult } from './campaign-logic.js';

export interface CampaignOptions {
  readonly file: string;
  readonly dayMs: number;
  readonly size: number;
  readonly seed: number;
  /** Days between the training set's reference dates (coarser trains faster). */
  readonly stepDays: number;
  readonly log?: (line: string) => void;
}

export interface CampaignSummary extends CampaignResult {
  readonly day: string;
  readonly modelVersion: string;
  readonly seconds: number;
}

export async function onlineRetailCampaign(options: CampaignOptions): Promise<CampaignSummary> {
  const started = Date.now();
  const transactions = await readTransactions(options.file);
  const last = transactions.at(-1)?.eventTimeMs ?? 0;
  if (options.dayMs + 14 * DAY_MS > last + DAY_MS) {
    throw new AppError(
      'USAGE',
      `--from ${iso(options.dayMs)}: the 14-day outcomes need data up to ${iso(options.dayMs + 13 * DAY_MS)}; the file ends ${iso(last)}`,
    );
  }
  const work = await mkdtemp(join(tmpdir(), 'patternos-campaign-'));
  try {
    const scoresFile = join(work, 'scores.csv');
    const evaluation = await evaluateOnlineRetail(options.file, options.dayMs, options.dayMs + DAY_MS, scoresFile, {
      train: true,
      modelsDir: join(work, 'models'),
      trainArgs: ['--step-days', String(options.stepDays)],
      ...(options.log ? { log: options.log } : {}),
    });
    const history = new Map(
      [...purchaseHistory(transactions)].map(([customer, purchases]) => [String(Number(customer)), purchases]),
    );
    const d = options.dayMs;
    const population: CampaignCustomer[] = [];
    for (const line of (await readFile(scoresFile, 'utf8')).trim().split('\n').slice(1)) {
      const [id = '', , score = ''] = line.split(',');
      const purchases = history.get(id) ?? [];
      population.push({
        id,
        score: Number(score),
        bought7d: purchases.some((p) => p.t >= d && p.t < d + 7 * DAY_MS),
        bought14d: purchases.some((p) => p.t >= d && p.t < d + 14 * DAY_MS),
      });
    }
    return {
      day: iso(d),
      modelVersion: String(evaluation['modelVersion']),
      ...campaignCheck(population, options.size, options.seed),
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The printed lines: per window the two groups' rates and the lift; the last line is one JSON object. */
export function formatCampaign(s: CampaignSummary): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  const lines = [
    `campaign on ${s.day}: ${s.population} customers with a purchase before it; groups of ${s.size}` +
      (s.size < s.sizeRequested ? ` (asked ${s.sizeRequested}: at most half the population)` : '') +
      `; ${s.overlap} in both; model ${s.modelVersion}; treatment scores ≥ ${s.treatmentMinScore.toFixed(4)}`,
  ];
  for (const w of s.windows) {
    const c = w.comparison;
    const ci = c.liftInterval ? `[${pct(c.liftInterval[0])}, ${pct(c.liftInterval[1])}]` : 'n/a';
    lines.push(
      `${String(w.days).padStart(2)} days: treatment ${w.treatment.buyers}/${w.treatment.customers} = ${pct(w.treatment.rate)}, ` +
        `control ${w.control.buyers}/${w.control.customers} = ${pct(w.control.rate)}, lift ${c.lift === null ? 'n/a' : pct(c.lift)} ` +
        `(95 % CI ${ci}), p ${c.pValue === null ? 'n/a' : c.pValue.toExponential(2)}`,
    );
  }
  const round = (x: number | null) => (x === null ? null : Number(x.toFixed(6)));
  lines.push(
    JSON.stringify({
      campaign: 'online-retail',
      day: s.day,
      model_version: s.modelVersion,
      population: s.population,
      size_requested: s.sizeRequested,
      size: s.size,
      overlap: s.overlap,
      windows: s.windows.map((w) => ({
        days: w.days,
        treatment: w.treatment,
        control: w.control,
        lift: round(w.comparison.lift),
        lift_ci: w.comparison.liftInterval?.map((x) => round(x)) ?? null,
        difference: round(w.comparison.difference),
        difference_ci: w.comparison.differenceInterval?.map((x) => round(x)) ?? null,
        z: round(w.comparison.z),
        p_value: w.comparison.pValue,
      })),
      seconds: s.seconds,
    }),
  );
  return lines;
}

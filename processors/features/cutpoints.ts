/**
 * Where the stream finds the RFM cut points: the Redis key `<prefix>features:rfm-cutpoints` (JSON RfmCutPoints),
 * published by `npm run features -- cutpoints --publish` from the warehouse. Missing → DEFAULT_CUT_POINTS.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { AppError } from '../runtime/errors.js';
import { DEFAULT_CUT_POINTS, type RfmCutPoints } from './definitions.js';

export const cutPointsKey = (prefix: string) => `${prefix}features:rfm-cutpoints`;

const ascending4 = z
  .array(z.number())
  .length(4)
  .refine((xs) => xs.every((x, i) => i === 0 || x >= (xs[i - 1] ?? x)), 'cut points must be ascending');
const cutPointsSchema = z.object({
  recencyDays: ascending4,
  frequency90d: ascending4,
  monetary90dMinor: ascending4,
  source: z.string(),
});

export function parseCutPoints(json: string): RfmCutPoints {
  const parsed = cutPointsSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new AppError('CONFIG_INVALID', `RFM cut points: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export async function publishCutPoints(redis: Redis, prefix: string, cuts: RfmCutPoints): Promise<void> {
  await redis.set(cutPointsKey(prefix), JSON.stringify(cutPointsSchema.parse(cuts)));
}

export async function loadCutPoints(redis: Redis, prefix: string): Promise<RfmCutPoints> {
  const json = await redis.get(cutPointsKey(prefix));
  return json ? parseCutPoints(json) : DEFAULT_CUT_POINTS;
}

/** Keeps the current cut points in memory, re-read every `refreshMs`; a failed refresh keeps the last good value. */
export class CutPointsSource {
  private current: RfmCutPoints = DEFAULT_CUT_POINTS;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  get = (): RfmCutPoints => this.current;

  async start(refreshMs: number): Promise<void> {
    this.current = await loadCutPoints(this.redis, this.prefix);
    this.timer = setInterval(() => {
      loadCutPoints(this.redis, this.prefix).then((c) => (this.current = c), this.onError);
    }, refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

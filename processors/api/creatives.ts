/**
 * The creative catalog POST /ad-decision chooses from, provided by the operator as a JSON file (API_CREATIVES_PATH):
 *
 * ```json
 * { "creatives": [
 *   { "id": "brand-spring", "type": "BRAND", "title": "Spring at PatternOS shops", "url": "https://…", "weight": 1 },
 *   { "id": "cat-electronics", "type": "CATEGORY", "category": "electronics", "title": "…" },
 *   { "id": "prod-electronics-headphones", "type": "PRODUCT", "category": "electronics", "title": "…", "product_id": "…" }
 * ] }
 * ```
 *
 * PRODUCT and CATEGORY creatives name the category they advertise (the model's predicted categories); at least one
 * BRAND creative is required, so every decision has an ad. `weight` (default 1) biases the choice among several
 * eligible creatives. The file is checked as a whole at startup: a bad catalog stops the API with every problem named.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { AppError } from '../runtime/errors.js';

export const AD_TYPES = ['PRODUCT', 'CATEGORY', 'BRAND'] as const;
export type AdType = (typeof AD_TYPES)[number];

const creativeSchema = z
  .object({
    id: z.string().min(1).max(200),
    type: z.enum(AD_TYPES),
    category: z.string().min(1).optional(),
    title: z.string().min(1),
    url: z.string().optional(),
    product_id: z.string().optional(),
    weight: z.number().positive().default(1),
  })
  .refine((c) => c.type === 'BRAND' || c.category !== undefined, {
    message: 'PRODUCT and CATEGORY creatives need a category',
  });

const catalogSchema = z
  .object({ creatives: z.array(creativeSchema).min(1) })
  .refine((c) => c.creatives.some((x) => x.type === 'BRAND'), { message: 'at least one BRAND creative is required' })
  .refine((c) => new Set(c.creatives.map((x) => x.id)).size === c.creatives.length, {
    message: 'creative ids must be unique',
  });

export type Creative = z.infer<typeof creativeSchema>;

export class CreativeCatalog {
  readonly brand: readonly Creative[];
  private readonly index = new Map<string, Creative[]>();

  private constructor(readonly creatives: readonly Creative[]) {
    this.brand = creatives.filter((c) => c.type === 'BRAND');
    for (const c of creatives) {
      if (c.type === 'BRAND' || !c.category) continue;
      const key = `${c.type}\u0000${c.category}`;
      this.index.set(key, [...(this.index.get(key) ?? []), c]);
    }
  }

  /** Checks a parsed catalog document; AppError CONFIG_INVALID naming every problem. */
  static parse(doc: unknown, origin = 'creative catalog'): CreativeCatalog {
    const parsed = catalogSchema.safeParse(doc);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
      throw new AppError('CONFIG_INVALID', `${origin}: ${problems.join('; ')}`);
    }
    return new CreativeCatalog(parsed.data.creatives);
  }

  static load(path: string): CreativeCatalog {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new AppError('CONFIG_INVALID', `creative catalog ${path}: ${(err as Error).message}`, { cause: err });
    }
    return CreativeCatalog.parse(doc, `creative catalog ${path}`);
  }

  /** PRODUCT or CATEGORY creatives of one category. */
  byCategory(type: Exclude<AdType, 'BRAND'>, category: string): readonly Creative[] {
    return this.index.get(`${type}\u0000${category}`) ?? [];
  }
}

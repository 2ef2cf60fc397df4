/**
 * A model version from the registry directory (training/ writes it): `<MODEL_DIR>/<version>/model.onnx` and
 * `feature-manifest.json`, with `<MODEL_DIR>/current` naming the version to serve. onnxruntime-node runs it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { z } from 'zod';
import type { FeatureName } from '../features/definitions.js';
import { modelFeatureOrder, type CalibrationPoints, type Thresholds } from './logic.js';
import { currentVersion } from './current-version.js';

const manifestSchema = z.object({
  model_version: z.string().min(1),
  model_file: z.string().min(1),
  input: z.object({ name: z.string(), shape: z.tuple([z.unknown(), z.number().int()]) }),
  output: z.object({ name: z.string(), positive_index: z.number().int().min(0) }),
  features: z.array(z.object({ index: z.number().int(), name: z.string() })).min(1),
  calibration: z.object({ points: z.array(z.tuple([z.number(), z.number()])) }),
  thresholds: z.object({ high: z.number(), medium: z.number() }),
});

export type Manifest = z.infer<typeof manifestSchema>;

export class LoadedModel {
  private constructor(
    readonly version: string,
    readonly features: readonly FeatureName[],
    readonly calibration: CalibrationPoints,
    readonly thresholds: Thresholds,
    private readonly session: InferenceSession,
    private readonly manifest: Manifest,
  ) {}

  /** Loads and checks a version: its features must be ones this build computes, in the manifest's index order. */
  static async load(modelDir: string, version: string): Promise<LoadedModel> {
    const dir = join(modelDir, version);
    const manifest = manifestSchema.parse(JSON.parse(await readFile(join(dir, 'feature-manifest.json'), 'utf8')));
    if (manifest.model_version !== version) {
      throw new Error(`manifest of ${version} says it is ${manifest.model_version}`);
    }
    const ordered = [...manifest.features].sort((a, b) => a.index - b.index);
    if (ordered.some((f, i) => f.index !== i) || ordered.length !== manifest.input.shape[1]) {
      throw new Error(`manifest of ${version}: feature indexes do not match the input width`);
    }
    const features = modelFeatureOrder(ordered.map((f) => f.name));
    const session = await InferenceSession.create(join(dir, manifest.model_file), {
      intraOpNumThreads: 1, // the processors share two cores; one thread keeps scoring off the others
      interOpNumThreads: 1,
    });
    return new LoadedModel(version, features, manifest.calibration.points, manifest.thresholds, session, manifest);
  }

  /** Probability of the positive class for each row of `matrix` (row-major, `features.length` wide). */
  async predict(matrix: Float32Array): Promise<Float64Array> {
    const width = this.features.length;
    const n = matrix.length / width;
    const input = new Tensor('float32', matrix, [n, width]);
    const outputs = await this.session.run({ [this.manifest.input.name]: input });
    const out = outputs[this.manifest.output.name];
    if (!out) throw new Error(`model ${this.version} has no output ${this.manifest.output.name}`);
    const data = out.data as Float32Array;
    const columns = data.length / n;
    const result = new Float64Array(n);
    for (let r = 0; r < n; r++)
      result[r] = data[r * columns + (columns === 1 ? 0 : this.manifest.output.positive_index)] ?? 0;
    return result;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

export { currentVersion };

/**
 * Serves the current model and swaps in a newly promoted one without a restart: it polls the `current` pointer, loads
 * the new version fully, then swaps the reference between two micro-batches, so no batch is scored half by each.
 */
export class ModelWatcher {
  private model: LoadedModel | null = null;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(
    private readonly modelDir: string,
    private readonly onChange: (from: string | null, to: string) => void = () => undefined,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  get current(): LoadedModel | null {
    return this.model;
  }

  /** Re-reads the pointer now; resolves once a changed version is loaded (or the check failed and was reported). */
  async check(): Promise<void> {
    this.checking ??= (async () => {
      try {
        const version = await currentVersion(this.modelDir);
        if (!version || version === this.model?.version) return;
        const next = await LoadedModel.load(this.modelDir, version);
        const previous = this.model;
        this.model = next;
        this.onChange(previous?.version ?? null, version);
        // Let a batch that took the previous reference finish before releasing its session.
        if (previous) setTimeout(() => void previous.close(), 5_000).unref();
      } catch (err) {
        this.onError(err);
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }

  async start(pollMs: number): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.model?.close();
    this.model = null;
  }
}

/** A watcher of `modelDir` that logs every model change and every failed load (the processors' and the API's). */
export function watchModels(
  modelDir: string,
  log: {
    info: (m: string, f?: Record<string, unknown>) => void;
    error: (m: string, f?: Record<string, unknown>) => void;
  },
): ModelWatcher {
  return new ModelWatcher(
    modelDir,
    (from, to) => {
      log.info('model loaded', { from, to });
    },
    (err) => {
      log.error('model load failed; keeping the current one', { error: String(err) });
    },
  );
}

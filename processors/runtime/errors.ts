/** What should happen next when an error reaches the runtime. */
export type Disposition = 'retry' | 'dead-letter' | 'crash';

/** The closed list of error codes; each says what should happen next. */
export const errorCodes = {
  CONFIG_INVALID: 'crash', // fix the deployment; retrying cannot help
  MODEL_CONTRACT: 'crash', // model.onnx / feature-manifest.json disagree with the code
  RECORD_UNDECODABLE: 'dead-letter', // bytes the registry cannot decode (bad magic byte, unknown schema id, not Avro)
  RECORD_INVALID: 'dead-letter', // decoded, but breaks a domain rule (negative quantity, unknown currency, no ids)
  DEPENDENCY_UNAVAILABLE: 'retry', // Redis, ClickHouse, registry or broker timeouts and 5xx
  USAGE: 'crash', // a CLI was called wrongly
} as const satisfies Record<string, Disposition>;

export type ErrorCode = keyof typeof errorCodes;

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Unclassified errors are bugs until proven otherwise: stop and alert, don't park data. */
export const dispositionOf = (err: unknown): Disposition => (err instanceof AppError ? errorCodes[err.code] : 'crash');

/** A message for logs and dead letters, including the cause chain. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause === undefined ? '' : ` (cause: ${describeError(err.cause)})`;
  return `${err.message}${cause}`;
}

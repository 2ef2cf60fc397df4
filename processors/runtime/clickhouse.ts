/**
 * The one place ClickHouse clients are made, plus the helpers every caller needs against ClickHouse 18.16: it has no
 * query parameters, so values are inlined as escaped literals, and its errors carry no `(TYPE)` marker, so callers
 * classify them by the numeric code in the message (see isTransientClickHouseError).
 */
import {
  ClickHouseLogLevel,
  createClient,
  type ClickHouseClient,
  type Logger,
  type WarnLogParams,
} from '@clickhouse/client';
import { AppError } from './errors.js';
import type { Config } from './config.js';

export interface ClickHouseOptions {
  /**
   * Database the client's unqualified table names resolve in. `null` sends no database (the server's `default`), which
   * is what `CREATE DATABASE` needs while the target does not exist yet.
   * @default config.CLICKHOUSE_DATABASE
   */
  readonly database?: string | null;
  /**
   * Socket-level timeout of one request. A sink insert of a few thousand rows takes milliseconds; this bounds a hung
   * server or a stuck merge so the caller's retry loop gets control back.
   * @default 60_000
   */
  readonly requestTimeoutMs?: number;
}

interface ClientOrigin {
  readonly config: Config;
  readonly requestTimeoutMs: number;
  readonly database: string | null;
}

/** How each client was made, so a sibling on another database can be derived without re-reading config. */
const origins = new WeakMap<ClickHouseClient, ClientOrigin>();

const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const PLAIN_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A client for config.CLICKHOUSE_URL. Only settings ClickHouse 18.16 knows are sent (an unknown one fails every
 * request there): `date_time_input_format=best_effort` so JS `Date`/ISO-8601 strings insert into DateTime columns.
 */
export function createClickHouse(config: Config, options: ClickHouseOptions = {}): ClickHouseClient {
  const database = options.database === undefined ? config.CLICKHOUSE_DATABASE : options.database;
  if (database !== null && !PLAIN_IDENTIFIER.test(database)) {
    throw new AppError(
      'CONFIG_INVALID',
      `ClickHouse database must be a plain identifier, got ${JSON.stringify(database)}`,
    );
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const client = createClient({
    url: config.CLICKHOUSE_URL,
    username: config.CLICKHOUSE_USER,
    password: config.CLICKHOUSE_PASSWORD.reveal(),
    // The client omits the `database` URL parameter for 'default', which is what "no database" means on the server.
    database: database ?? 'default',
    application: 'patternos',
    request_timeout: requestTimeoutMs,
    clickhouse_settings: { date_time_input_format: 'best_effort' },
    log: { LoggerClass: ClientLog, level: ClickHouseLogLevel.WARN },
  });
  origins.set(client, { config, requestTimeoutMs, database });
  return client;
}

/**
 * The client's own log: warnings (socket keep-alive trouble and the like) as one JSON line on stderr, like
 * runtime/log.ts. Its ERROR lines are dropped: each duplicates an error that is also thrown to the caller, which
 * decides whether it is worth a line (a retried outage would otherwise print a stack trace per attempt).
 */
class ClientLog implements Logger {
  trace(): void {}
  debug(): void {}
  info(): void {}
  warn({ module, message, err }: WarnLogParams): void {
    const line = { t: new Date().toISOString(), level: 'warn', msg: message, module, error: err?.message };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  }
  error(): void {}
}

/**
 * A new client like `client` (same server, credentials and timeout) but on `database`; undefined when `client` was not
 * made by createClickHouse. The caller owns it and must close it. Lets migrate() create the database its client points
 * at, which a request carrying `database=<missing>` cannot do on ClickHouse.
 */
export function siblingClickHouse(client: ClickHouseClient, database: string | null): ClickHouseClient | undefined {
  const origin = origins.get(client);
  if (!origin) return undefined;
  return createClickHouse(origin.config, { database, requestTimeoutMs: origin.requestTimeoutMs });
}

/** The database a createClickHouse client was made for (`null` = none); undefined for other clients. */
export function databaseOfClickHouse(client: ClickHouseClient): string | null | undefined {
  return origins.get(client)?.database;
}

/**
 * Escapes the body of a single-quoted ClickHouse string literal (no quotes added): backslash and quote are
 * backslash-escaped, control characters written as escapes. Use as `'${escapeString(v)}'` or use quoteString.
 */
export function escapeString(value: string): string {
  return value.replace(/[\\'\0\n\r\t\b\f]/g, (ch) => STRING_ESCAPES[ch] ?? ch);
}

const STRING_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "\\'",
  '\0': '\\0',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

/** A complete single-quoted string literal: `quoteString("it's")` → `'it\'s'`. */
export function quoteString(value: string): string {
  return `'${escapeString(value)}'`;
}

/**
 * A back-quoted identifier (database, table, column) that is safe whatever the name holds. Plain names still come back
 * quoted, so the output is always a single identifier token.
 */
export function quoteIdentifier(name: string): string {
  if (name.length === 0) throw new AppError('USAGE', 'an SQL identifier cannot be empty');
  if (name.includes('\0')) throw new AppError('USAGE', 'an SQL identifier cannot contain NUL');
  return `\`${name.replace(/[\\`]/g, (ch) => `\\${ch}`)}\``;
}

/**
 * Server error codes that mean "the same request may succeed later": overload, timeouts, network trouble, replicas or
 * ZooKeeper away, a full disk or memory. Everything else the server reports (syntax, types, unknown columns, bad data,
 * authentication) will fail identically on retry.
 */
const TRANSIENT_SERVER_CODES: ReadonlySet<number> = new Set([
  95, // CANNOT_READ_FROM_SOCKET
  96, // CANNOT_WRITE_TO_SOCKET
  159, // TIMEOUT_EXCEEDED
  160, // TOO_SLOW
  173, // CANNOT_ALLOCATE_MEMORY
  198, // DNS_ERROR
  201, // QUOTA_EXPIRED
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  203, // NO_FREE_CONNECTION
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  225, // NO_ZOOKEEPER
  236, // ABORTED
  241, // MEMORY_LIMIT_EXCEEDED
  242, // TABLE_IS_READ_ONLY (replica lost ZooKeeper)
  243, // NOT_ENOUGH_SPACE
  244, // UNEXPECTED_ZOOKEEPER_ERROR
  252, // TOO_MANY_PARTS (inserts faster than merges: back off)
  254, // NO_ACTIVE_REPLICAS
  265, // NO_AVAILABLE_REPLICA
  279, // ALL_CONNECTION_TRIES_FAILED
  285, // TOO_FEW_LIVE_REPLICAS
  286, // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
  319, // UNKNOWN_STATUS_OF_INSERT
  364, // RECEIVED_ERROR_TOO_MANY_REQUESTS
  373, // SESSION_IS_LOCKED
  384, // PART_IS_TEMPORARILY_LOCKED
  394, // QUERY_WAS_CANCELLED (server shutting down)
  425, // SYSTEM_ERROR
  439, // CANNOT_SCHEDULE_TASK
  473, // DEADLOCK_AVOIDED (lock wait timed out)
  999, // KEEPER_EXCEPTION
]);

/** Node/undici socket and DNS error codes: the server was not reached or the connection broke. */
const TRANSIENT_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND', // DNS of a container or service that is (re)starting
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** `Code: 252, e.displayText() = …` (18.16) or `Code: 252. DB::Exception: …` (current). */
const SERVER_CODE_IN_MESSAGE = /\bCode: (\d+)[.,]/;

/** The ClickHouse server error code of `err`, from ClickHouseError.code or the message text; undefined if none. */
export function clickHouseErrorCode(err: unknown): number | undefined {
  for (const e of causeChain(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^\d+$/.test(code)) return Number(code); // ClickHouseError (current servers)
    const match = SERVER_CODE_IN_MESSAGE.exec(messageOf(e));
    if (match?.[1] !== undefined) return Number(match[1]);
  }
  return undefined;
}

/**
 * True when retrying the same ClickHouse request later may succeed: connection refused/reset, socket or request
 * timeouts, HTTP 5xx from a proxy (an error page, or no body at all), and server codes for overload or replica/ZooKeeper trouble (TOO_MANY_PARTS,
 * TIMEOUT_EXCEEDED, MEMORY_LIMIT_EXCEEDED, …). False for what will fail identically again (syntax, type, unknown
 * column, unparsable data, authentication), so the warehouse sink retries the former and never dead-letters a healthy
 * record because of an outage. Looks through `cause` chains.
 */
export function isTransientClickHouseError(err: unknown): boolean {
  const serverCode = clickHouseErrorCode(err);
  if (serverCode !== undefined) return TRANSIENT_SERVER_CODES.has(serverCode);
  for (const e of causeChain(err)) {
    if (e instanceof AppError) {
      if (e.code === 'DEPENDENCY_UNAVAILABLE') return true;
      continue;
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_SOCKET_CODES.has(code)) return true;
    const status = httpStatusOf(e);
    if (status !== undefined && status >= 500) return true;
    if (status === 429) return true;
    const message = messageOf(e);
    if (TRANSIENT_MESSAGE.test(message)) return true;
    // The client drops the HTTP status of an error response and keeps only its body, and ClickHouse always sends a
    // `Code: N` body; an empty one is a proxy or load balancer in front of it answering 502/503 without a page.
    if (e instanceof Error && message.trim() === '' && e.cause === undefined) return true;
  }
  return false;
}

/**
 * Messages without a server code that still mean "try again": the client's own timeout ("Timeout error."), a dropped
 * keep-alive socket ("socket hang up"), an error page from a proxy in front of ClickHouse, or a TOO_MANY_PARTS text
 * from a wrapper that lost the code.
 */
const TRANSIENT_MESSAGE =
  /timeout error|timed? ?out|socket hang up|ECONNREFUSED|ECONNRESET|EPIPE|too many parts|TOO_MANY_PARTS|service (?:temporarily )?unavailable|bad gateway|gateway time-?out|\b50[0234] (?:internal|bad|service|gateway)/i;

function httpStatusOf(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const record = e as Record<string, unknown>;
  for (const key of ['statusCode', 'status', 'http_status_code']) {
    const value = record[key];
    if (typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599) return value;
  }
  return undefined;
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  return '';
}

function* causeChain(err: unknown): Generator {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current !== undefined && current !== null && !seen.has(current) && seen.size < 10) {
    seen.add(current);
    yield current;
    current = current instanceof Error ? current.cause : undefined;
  }
}

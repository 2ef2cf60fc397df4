import { describe, expect, it } from 'vitest';
import {
  clickHouseErrorCode,
  escapeString,
  isTransientClickHouseError,
  quoteIdentifier,
  quoteString,
} from '../../processors/runtime/clickhouse.js';
import { AppError } from '../../processors/runtime/errors.js';

/** An error shaped like what @clickhouse/client throws for an HTTP error response of ClickHouse 18.16. */
const server1816 = (code: number, text: string) =>
  new Error(`Code: ${code}, e.displayText() = DB::Exception: ${text}, e.what() = DB::Exception\n`);
/** ...and of a current server, parsed by the client into a ClickHouseError (code as a string). */
const serverCurrent = (code: number, type: string, text: string) =>
  Object.assign(new Error(`${text}. `), { name: 'ClickHouseError', code: String(code), type });
const sysError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:18123`), { code });

describe('literal escaping', () => {
  it('escapes backslash, quote and control characters', () => {
    expect(escapeString("it's")).toBe("it\\'s");
    expect(escapeString('a\\b')).toBe('a\\\\b');
    expect(escapeString('l1\nl2\r\t\0')).toBe('l1\\nl2\\r\\t\\0');
    expect(escapeString('ünï 😀 {p:String} ?')).toBe('ünï 😀 {p:String} ?');
    expect(quoteString("'; DROP TABLE x; --")).toBe("'\\'; DROP TABLE x; --'");
  });

  it('quotes identifiers with backticks', () => {
    expect(quoteIdentifier('patternos')).toBe('`patternos`');
    expect(quoteIdentifier('we`ird\\')).toBe('`we\\`ird\\\\`');
    expect(() => quoteIdentifier('')).toThrow(AppError);
  });
});

describe('isTransientClickHouseError', () => {
  it('retries connection failures and timeouts', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']) {
      expect(isTransientClickHouseError(sysError(code))).toBe(true);
    }
    expect(isTransientClickHouseError(new Error('Timeout error.'))).toBe(true); // the client's request_timeout
    expect(isTransientClickHouseError(new Error('socket hang up'))).toBe(true);
    expect(
      isTransientClickHouseError(new AppError('DEPENDENCY_UNAVAILABLE', 'x', { cause: sysError('ECONNRESET') })),
    ).toBe(true);
    expect(isTransientClickHouseError(new Error('insert failed', { cause: sysError('ECONNREFUSED') }))).toBe(true);
  });

  it('retries HTTP 5xx from a proxy and overload codes from the server', () => {
    expect(isTransientClickHouseError(new Error('<html><title>503 Service Temporarily Unavailable</title>'))).toBe(
      true,
    );
    expect(isTransientClickHouseError(new Error('502 Bad Gateway'))).toBe(true);
    expect(isTransientClickHouseError(new Error(''))).toBe(true); // a 502 with no body: the client keeps only the body
    expect(isTransientClickHouseError(Object.assign(new Error('upstream'), { statusCode: 503 }))).toBe(true);
    expect(
      isTransientClickHouseError(
        server1816(252, 'Too many parts (300). Merges are processing significantly slower than inserts'),
      ),
    ).toBe(true);
    expect(isTransientClickHouseError(serverCurrent(252, 'TOO_MANY_PARTS', 'Too many parts (3001)'))).toBe(true);
    expect(isTransientClickHouseError(server1816(159, 'Timeout exceeded: elapsed 1.0 seconds, maximum: 1'))).toBe(true);
    expect(isTransientClickHouseError(server1816(241, 'Memory limit (for query) exceeded'))).toBe(true);
    expect(isTransientClickHouseError(new Error('Too many parts in partition 202601'))).toBe(true);
  });

  it('does not retry what would fail again', () => {
    expect(isTransientClickHouseError(server1816(62, 'Syntax error: failed at position 1: SELEC 1'))).toBe(false);
    expect(isTransientClickHouseError(server1816(27, 'Cannot parse input: expected " before: abc'))).toBe(false);
    expect(isTransientClickHouseError(server1816(53, 'Type mismatch in IN or VALUES section'))).toBe(false);
    expect(isTransientClickHouseError(serverCurrent(60, 'UNKNOWN_TABLE', 'Table x.y does not exist'))).toBe(false);
    // A timeout word inside a non-transient server error does not make it transient.
    expect(isTransientClickHouseError(server1816(16, 'There is no column timeout in table'))).toBe(false);
    expect(isTransientClickHouseError(new AppError('RECORD_INVALID', 'bad record'))).toBe(false);
    expect(isTransientClickHouseError(new TypeError('x is undefined'))).toBe(false);
    expect(isTransientClickHouseError(undefined)).toBe(false);
  });

  it('reads the server code from either message format', () => {
    expect(clickHouseErrorCode(server1816(81, "Database nope doesn't exist"))).toBe(81);
    expect(clickHouseErrorCode(new Error('Code: 252. DB::Exception: Too many parts. (TOO_MANY_PARTS)'))).toBe(252);
    expect(clickHouseErrorCode(serverCurrent(60, 'UNKNOWN_TABLE', 'nope'))).toBe(60);
    expect(clickHouseErrorCode(sysError('ECONNREFUSED'))).toBeUndefined();
  });
});

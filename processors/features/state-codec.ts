/**
 * The checkpoint's binary encoding of a FeatureState (format 2 in memory): positional, every number a varint, written
 * into one reused buffer. It replaces JSON for checkpoints because a checkpoint is written for every customer changed
 * since the last one, and JSON.stringify / JSON.parse of the bucket arrays was the largest single part of the feature
 * processor's per-update work (number → decimal text and back). Pure: no I/O.
 *
 * Layout: the two bytes 0xFE 0x01 (never the start of JSON text, which is what checkpoints written before hold:
 * {@link isBinaryState} tells them apart), then, in this order:
 *   f, l, fp, lp, ol, sl, late · m, h, d (bucket arrays) · c (count; per category: name, l, buckets) · s (count; ids;
 *   then sv) · st (count; ids; stv) · wm (count; key, offset) · lt (count; key, time) · x · bn/bv · y
 * The optional parts are a presence flag (0/1) and their buckets (x, y), or the brand count + 1 (0: no bn/bv). Numbers are tokens: a safe integer n
 * up to 2^50 in size is the varint of 4·zigzag(n) (low bit 0); 1 is a float64 that follows (any other number: fractions, −0, NaN, ±∞);
 * 3 is null. Bucket arrays hold rows of a fixed stride whose first column ascends: that column is written as the
 * difference to the row before (zigzag, so any order still round-trips), which is what keeps minute and day indexes
 * to a byte or two; a session's last event is written as the difference to its first. Strings are their UTF-8 byte length and bytes.
 *
 * Every read is bounds-checked: a truncated or corrupt value throws instead of producing a wrong state.
 */
import { B, C, D, H, M, S, X, Y, type FeatureState } from './state.js'; // the bucket arrays' strides

const MAGIC0 = 0xfe;
const MAGIC1 = 0x01;

/** Whether a stored checkpoint is this binary encoding (else it is JSON, format 1 or 2). */
export function isBinaryState(stored: Uint8Array): boolean {
  return stored.length >= 2 && stored[0] === MAGIC0 && stored[1] === MAGIC1;
}

/** Writes into one buffer, reused across states and grown as needed. */
class Writer {
  b = new Uint8Array(1 << 16);
  p = 0;

  private grow(bytes: number): void {
    let size = this.b.length * 2;
    while (size < this.p + bytes) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.b.subarray(0, this.p));
    this.b = next;
  }

  /** A non-negative integer below 2^56 as a varint (7 bits a byte, low first), in 32-bit halves above 2^31. */
  varint(v: number): void {
    if (this.p + 8 > this.b.length) this.grow(8);
    const b = this.b;
    let p = this.p;
    if (v >= 0x80000000) {
      const lo = v >>> 0;
      const hi = (v - lo) / 0x100000000;
      b[p++] = (lo & 127) | 128;
      b[p++] = ((lo >>> 7) & 127) | 128;
      b[p++] = ((lo >>> 14) & 127) | 128;
      b[p++] = ((lo >>> 21) & 127) | 128;
      v = (lo >>> 28) | (hi << 4); // hi < 2^24: fits
    }
    while (v >= 128) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.p = p;
  }

  number(n: number): void {
    if (Number.isInteger(n) && n <= INT_LIMIT && n >= -INT_LIMIT && (n !== 0 || 1 / n > 0)) {
      this.varint(n >= 0 ? n * 4 : -n * 4 - 2);
      return;
    }
    if (this.p + 9 > this.b.length) this.grow(9);
    this.b[this.p++] = 1;
    FLOAT.setFloat64(0, n, true);
    this.b.set(FLOAT_BYTES, this.p);
    this.p += 8;
  }

  nullable(n: number | null): void {
    if (n !== null) this.number(n);
    else this.varint(3);
  }

  string(s: string): void {
    const n = s.length;
    if (n < 128) {
      if (this.p + 1 + n > this.b.length) this.grow(1 + n);
      const b = this.b;
      let p = this.p + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 127) break;
        b[p++] = c;
      }
      if (i === n) {
        b[this.p] = n;
        this.p = p;
        return;
      }
    }
    const bytes = UTF8.encode(s);
    this.varint(bytes.length);
    if (this.p + bytes.length > this.b.length) this.grow(bytes.length);
    this.b.set(bytes, this.p);
    this.p += bytes.length;
  }

  /** Rows of stride `n`; the first column as the difference to the previous row's. */
  buckets(a: readonly number[], n: number): void {
    this.varint(a.length);
    let prev = 0;
    for (let i = 0; i < a.length; i += n) {
      const key = a[i] as number;
      this.number(key - prev);
      prev = key;
      for (let k = 1; k < n; k++) this.number(a[i + k] as number);
    }
  }

  /** Sessions (stride S): first as the difference to the previous row's, last as the difference to its first. */
  sessions(a: readonly number[]): void {
    this.varint(a.length);
    let prev = 0;
    for (let i = 0; i < a.length; i += S) {
      const first = a[i] as number;
      this.number(first - prev);
      this.number((a[i + 1] as number) - first);
      this.number(a[i + 2] as number);
      this.number(a[i + 3] as number);
      prev = first;
    }
  }

  optionalBuckets(a: readonly number[] | undefined, n: number): void {
    if (!a) this.varint(0);
    else {
      this.varint(1);
      this.buckets(a, n);
    }
  }

  record(r: Record<string, number>): void {
    const keys = Object.keys(r);
    this.varint(keys.length);
    for (const k of keys) {
      this.string(k);
      this.number(r[k] as number);
    }
  }

  strings(a: readonly string[]): void {
    this.varint(a.length);
    for (const s of a) this.string(s);
  }
}

/** Integers up to this size are varints (4·zigzag stays below 2^53, exact); larger ones are float64. */
const INT_LIMIT = 2 ** 50;
const FLOAT_BYTES = new Uint8Array(8);
const FLOAT = new DataView(FLOAT_BYTES.buffer);
const UTF8 = new TextEncoder();
const writer = new Writer();

/** The binary checkpoint of `state` (a fresh buffer the caller may keep). */
export function encodeBinaryState(state: FeatureState): Buffer {
  const w = write(state);
  const out = Buffer.allocUnsafe(w.p); // small ones are slices of Node's pool: no backing store of their own
  out.set(w.b.subarray(0, w.p));
  return out;
}

/**
 * The binary checkpoint of `state` as base64 text, what the processor stores: ioredis sends a command with a Buffer
 * argument on a slower path (one buffer per command, then the whole pipeline concatenated again), which with a
 * checkpoint per customer cost more than the encoding saved.
 */
export function encodeStateText(state: FeatureState): string {
  const w = write(state);
  return Buffer.from(w.b.buffer, w.b.byteOffset, w.p).toString('base64');
}

/** Writes `state` into the shared writer. */
function write(state: FeatureState): Writer {
  const w = writer;
  w.p = 0;
  w.b[w.p++] = MAGIC0;
  w.b[w.p++] = MAGIC1;
  w.number(state.f);
  w.number(state.l);
  w.nullable(state.fp);
  w.nullable(state.lp);
  w.number(state.ol);
  w.number(state.sl);
  w.number(state.late);
  w.buckets(state.m, M);
  w.buckets(state.h, H);
  w.buckets(state.d, D);
  const categories = Object.keys(state.c);
  w.varint(categories.length);
  for (const name of categories) {
    const c = state.c[name] as FeatureState['c'][string];
    w.string(name);
    w.number(c.l);
    w.buckets(c.d, C);
  }
  w.strings(state.s);
  w.sessions(state.sv);
  w.strings(state.st);
  w.buckets(state.stv, 1);
  w.record(state.wm);
  w.record(state.lt);
  w.optionalBuckets(state.x, X);
  const { bn, bv } = state;
  if (bn && bv) {
    w.varint(bn.length + 1);
    for (let i = 0; i < bn.length; i++) {
      w.string(bn[i] as string);
      w.buckets(bv[i] ?? [], B);
    }
  } else w.varint(0);
  w.optionalBuckets(state.y, Y);
  return w;
}

/** A reader over one stored value. */
class Reader {
  private at = 2;
  constructor(private readonly b: Buffer) {}

  private corrupt(what: string): never {
    throw new RangeError(
      `binary feature state is corrupt or truncated (${what} at byte ${this.at} of ${this.b.length})`,
    );
  }

  done(): void {
    if (this.at !== this.b.length) this.corrupt('trailing bytes');
  }

  varint(): number {
    const b = this.b;
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.at >= b.length) this.corrupt('varint');
      const byte = b[this.at++] as number;
      v += (byte & 127) * scale;
      if (byte < 128) return v;
      scale *= 128;
    }
    return this.corrupt('varint longer than 8 bytes');
  }

  /** 0 or 1: whether an optional part follows. */
  flag(): boolean {
    const f = this.varint();
    if (f > 1) this.corrupt('presence flag');
    return f === 1;
  }

  /** A number token; null for the null token. */
  nullable(): number | null {
    const t = this.varint();
    if (t % 2 === 0) {
      const z = t / 2; // zigzag: exact, t is below 2^56
      return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    }
    if (t === 3) return null;
    if (t !== 1) this.corrupt('number token');
    if (this.at + 8 > this.b.length) this.corrupt('float64');
    const n = this.b.readDoubleLE(this.at);
    this.at += 8;
    return n;
  }

  number(): number {
    const n = this.nullable();
    return n === null ? this.corrupt('null where a number belongs') : n;
  }

  string(): string {
    const n = this.varint();
    const end = this.at + n;
    if (end > this.b.length) this.corrupt('string');
    const s = this.b.toString('utf8', this.at, end);
    this.at = end;
    return s;
  }

  /** A count of items that take at least a byte each (bounded by what is left, so a corrupt count cannot allocate). */
  count(what: string): number {
    const n = this.varint();
    if (n > this.b.length - this.at) this.corrupt(what);
    return n;
  }

  buckets(n: number): number[] {
    const len = this.count('bucket array length');
    if (len % n !== 0) this.corrupt('bucket array length');
    const a = new Array<number>(len);
    let prev = 0;
    for (let i = 0; i < len; i += n) {
      prev += this.number();
      a[i] = prev;
      for (let k = 1; k < n; k++) a[i + k] = this.number();
    }
    return a;
  }

  sessions(): number[] {
    const len = this.count('session array length');
    if (len % S !== 0) this.corrupt('session array length');
    const a = new Array<number>(len);
    let prev = 0;
    for (let i = 0; i < len; i += S) {
      prev += this.number();
      a[i] = prev;
      a[i + 1] = prev + this.number();
      a[i + 2] = this.number();
      a[i + 3] = this.number();
    }
    return a;
  }

  strings(): string[] {
    const len = this.count('string count');
    const a = new Array<string>(len);
    for (let i = 0; i < len; i++) a[i] = this.string();
    return a;
  }

  record(): Record<string, number> {
    const len = this.count('record size');
    const r: Record<string, number> = {};
    for (let i = 0; i < len; i++) setOwn(r, this.string(), this.number());
    return r;
  }
}

/** An own property whatever its name (a key named `__proto__` is just a key, as JSON.parse makes it). */
function setOwn<T>(r: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__')
    Object.defineProperty(r, key, { value, enumerable: true, writable: true, configurable: true });
  else r[key] = value;
}

/** The state a binary checkpoint holds (see {@link isBinaryState}); throws RangeError on a corrupt value. */
export function decodeBinaryState(stored: Buffer): FeatureState {
  if (!isBinaryState(stored)) throw new RangeError('not a binary feature state (missing its 0xFE 0x01 header)');
  const r = new Reader(stored);
  const f = r.number();
  const l = r.number();
  const fp = r.nullable();
  const lp = r.nullable();
  const ol = r.number();
  const sl = r.number();
  const late = r.number();
  const m = r.buckets(M);
  const h = r.buckets(H);
  const d = r.buckets(D);
  const c: FeatureState['c'] = {};
  const categories = r.count('category count');
  for (let i = 0; i < categories; i++) {
    const name = r.string();
    const cl = r.number();
    setOwn(c, name, { l: cl, d: r.buckets(C) });
  }
  const s = r.strings();
  const sv = r.sessions();
  const st = r.strings();
  const stv = r.buckets(1);
  const wm = r.record();
  const lt = r.record();
  if (sv.length !== s.length * S || stv.length !== st.length) throw new RangeError('binary feature state: sessions');
  const state: FeatureState = { v: 2, f, l, fp, lp, ol, sl, m, h, d, c, s, sv, st, stv, wm, lt, late };
  if (r.flag()) state.x = r.buckets(X);
  const brands = r.count('brand count');
  if (brands > 0) {
    const bn: string[] = [];
    const bv: number[][] = [];
    for (let i = 0; i < brands - 1; i++) {
      bn.push(r.string());
      bv.push(r.buckets(B));
    }
    state.bn = bn;
    state.bv = bv;
  }
  if (r.flag()) state.y = r.buckets(Y);
  r.done();
  return state;
}

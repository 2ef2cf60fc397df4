/**
 * Maps real public datasets onto the raw event contracts, so the pipeline can be run on data nobody here wrote.
 * Pure apart from CSV decoding of a stream the caller opens: no file access, no clock, no randomness; the same input
 * always gives the same events, so a replay is idempotent downstream (eventIds are derived from the source ids).
 *
 * ## UCI Online Retail (`online_retail.csv.gz`, columns InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
 * UnitPrice, CustomerID, Country) → Transaction
 *
 * - One invoice (`InvoiceNo`) = one Transaction; each of its rows = one LineItem, in file order.
 * - Grouping is streaming: the file is sorted by InvoiceDate and an invoice's rows sit together, except that an invoice
 *   whose rows straddle a minute may be interleaved with another invoice of that minute (e.g. 542806 around C542805;
 *   no invoice spans more than 60 s). An invoice is therefore emitted once the input has moved
 *   {@link INVOICE_CLOSE_AFTER_MS} (10 min) past its last row, and invoices are emitted in order of first appearance;
 *   only the invoices of the last few minutes are held in memory. Should an invoice's rows reappear after it was
 *   emitted (not the case in this file), they become a further Transaction `online-retail:<InvoiceNo>:part-<n>`.
 * - `platform` = 'online-retail'; `eventId` = `online-retail:<InvoiceNo>`; `orderId` = InvoiceNo as written.
 * - `eventTimeMs` = the invoice's first InvoiceDate. The file prints `YYYY-MM-DD HH:MM:SS` (the UCI original
 *   `M/D/YYYY H:MM` is accepted too); the data is UK local time without a zone and is read as UTC (an offset of at
 *   most one hour in summer; keeps the replay independent of the machine's time zone).
 * - `platformCustomerId` = CustomerID as the integer string ('17850.0' → '17850'); an empty CustomerID is a guest
 *   order: platformCustomerId null. (All rows of an invoice carry the same CustomerID; the first non-empty one wins.)
 * - `kind` = RETURN when InvoiceNo starts with 'C' (a cancellation), otherwise PURCHASE. Quantities are kept as
 *   given (negative in cancellations).
 * - `unitPriceMinor` = UnitPrice (GBP) × 100 rounded half away from zero, computed on the decimal string (integer
 *   pounds × 100 + the first two decimals, +1 when the third decimal is ≥ 5), so no binary-float error can creep in
 *   ('2.55' → 255, '0.001' → 0, '-11062.06' → -1106206). `currency` = 'GBP'.
 * - `totalMinor` = Σ quantity × unitPriceMinor over the invoice's lines.
 * - `productId` = StockCode as written; `productName` = Description with surrounding spaces trimmed (null when empty);
 *   `brand` = null; `category` from {@link onlineRetailCategory}: non-product StockCodes (POST, DOT, C2, M, D, S, B,
 *   BANK CHARGES, AMAZONFEE, CRUK) → 'service', else the first keyword rule of {@link ONLINE_RETAIL_CATEGORY_RULES}
 *   that matches a whole word of the Description, else 'other'.
 * - `sessionId`, `deviceId`, `identity` = null: the dataset holds no personal data; Country is not mapped (it
 *   describes the customer's country, and IdentityAttributes has no field for it).
 * - Anomalies are mapped faithfully, never dropped or repaired: negative quantities on non-'C' invoices (stock
 *   adjustments), zero prices, 'A' bad-debt invoices with negative prices, empty descriptions. Replayed with schema-only
 *   validation they reach the processors, which dead-letter them with a reason. Only a value that cannot be expressed
 *   in the Avro contract at all (a non-numeric Quantity/UnitPrice, an unreadable InvoiceDate) throws, naming the row.
 *
 * ## FEBRL person files (febrl1/2/4; header `rec_id, given_name, surname, street_number, address_1, address_2,
 * suburb, postcode, state, date_of_birth, soc_sec_id`, ", "-separated) → one IDENTIFY BehaviorEvent per record
 *
 * - `platform` = the caller's platform id; `platformCustomerId` = rec_id; `eventId` = `febrl:<platform>:<rec_id>`.
 * - `eventTimeMs` = baseTimeMs + the record's 0-based index in the file (ms): deterministic and in file order.
 * - identity.firstName/lastName = given_name/surname; address = street_number + ' ' + address_1, then
 *   ', ' + address_2 when present (empty parts are skipped; null when all are empty); city = suburb; postcode as
 *   written (a string: leading zeros matter); state is not mapped (no field).
 * - identity.birthDate = date_of_birth YYYYMMDD → YYYY-MM-DD when it is a real calendar date, else null (the
 *   duplicates contain corrupted dates like 19371233); ageGroup = the age bracket of a valid birth date at baseTimeMs.
 * - identity.phoneSha256 = hashIdentifier(salt, digits of soc_sec_id): the id stands in for a phone number so exact
 *   matching has a hashed identifier to work with. The digits are hashed directly, not through normalizePhone: for
 *   these 7-digit ids normalizePhone would change or reject nothing (none starts with '00'), so the hash is the same
 *   either way, and the mapping stays independent of future phone-normalization rules.
 * - identity.emailSha256 = null, deviceFingerprint = null; sessionId = deviceId = null; every other field null.
 *
 * ## CSV
 *
 * Decoding uses csv-parse (RFC 4180 quoting; Online Retail quotes descriptions containing commas or quotes). FEBRL's
 * ", " separator is read with `trim: true`, which also drops the CR of dataset4a's CRLF lines.
 */
import { pipeline, type Readable } from 'node:stream';
import { parse } from 'csv-parse';
import type { BehaviorEvent, LineItem, Transaction } from '../../schemas/generated/types.js';
import { AppError, describeError } from '../runtime/errors.js';
import { CsvLineReader, type BadLine, type CsvLineCounts } from './csv-lines.js';
import { ageGroupOf, hashIdentifier, hashIdentity } from './identity-hash.js';

/** One CSV record keyed by header name. */
export type CsvRecord = Record<string, string>;
/** Records from a file, a test fixture or an array. */
export type CsvRecords = AsyncIterable<CsvRecord> | Iterable<CsvRecord>;

export const ONLINE_RETAIL_PLATFORM = 'online-retail';
/** An invoice is complete once the (date-sorted) input has moved this far past its last row. */
export const INVOICE_CLOSE_AFTER_MS = 10 * 60_000;

/**
 * Decodes CSV with a header row into records. `trim` strips spaces around fields (FEBRL's ", " separator); leave it
 * off for Online Retail, whose quoted descriptions are kept as written.
 */
export function csvRecords(input: Readable | AsyncIterable<string | Buffer>, options: { trim?: boolean } = {}) {
  const parser = parse({ columns: true, trim: options.trim ?? false, skip_empty_lines: true, bom: true });
  // pipeline propagates a read error into the parser (its iterator throws) and closes the input when the consumer stops
  // early (--limit); the callback has nothing left to report.
  pipeline(input, parser, () => undefined);
  return parser as AsyncIterable<CsvRecord>;
}

/**
 * Keyword rules for Online Retail descriptions, first match wins (so "GLASS STAR FROSTED T-LIGHT HOLDER" is lighting,
 * not kitchen). Keywords match whole words of the upper-cased Description.
 */
export const ONLINE_RETAIL_CATEGORY_RULES: readonly (readonly [category: string, keywords: readonly string[]])[] = [
  ['christmas', ['CHRISTMAS', 'XMAS', 'ADVENT', 'SANTA', 'REINDEER', 'NATIVITY']],
  [
    'lighting',
    ['CANDLE', 'CANDLES', 'T-LIGHT', 'T-LIGHTS', 'LIGHT', 'LIGHTS', 'LANTERN', 'LAMP', 'NIGHTLIGHT', 'CANDLEHOLDER'],
  ],
  ['bags', ['BAG', 'BAGS', 'TOTE', 'SHOPPER', 'PURSE', 'BACKPACK', 'RUCKSACK']],
  [
    'kitchen',
    [
      'MUG',
      'MUGS',
      'CUP',
      'CUPS',
      'PLATE',
      'PLATES',
      'BOWL',
      'BOWLS',
      'TEAPOT',
      'TEA',
      'COFFEE',
      'CAKE',
      'CAKESTAND',
      'BAKING',
      'CUTLERY',
      'JAR',
      'JUG',
      'SAUCER',
      'NAPKINS',
      'KITCHEN',
      'PANTRY',
      'LUNCH',
      'TEASPOONS',
      'SPOON',
      'APRON',
      'TRAY',
      'BISCUIT',
      'CHOPSTICKS',
      'BEAKER',
      'TUMBLER',
      'JAM',
      'JARS',
      'COOKIE',
      'CUTTER',
      'CUTTERS',
      'SNACK',
      'BREAD',
      'OVEN',
      'GLOVE',
      'SPOONS',
      'RECIPE',
      'CASES',
      'CONTAINER',
      'LUNCHBOX',
    ],
  ],
  ['party', ['PARTY', 'BIRTHDAY', 'BALLOON', 'BALLOONS', 'BUNTING', 'CONFETTI', 'PARASOL']],
  [
    'stationery',
    [
      'CARD',
      'CARDS',
      'WRAP',
      'PAPER',
      'NOTEBOOK',
      'PEN',
      'PENS',
      'PENCIL',
      'PENCILS',
      'STICKER',
      'STICKERS',
      'ENVELOPE',
      'ENVELOPES',
      'RIBBON',
      'RIBBONS',
      'TAPE',
      'CALENDAR',
      'DIARY',
      'TAG',
      'TAGS',
      'ERASER',
      'STATIONERY',
      'NOTEBOOKS',
      'CHALKBOARD',
      'BLACKBOARD',
      'MEMO',
      'SKETCHBOOK',
    ],
  ],
  [
    'toys',
    [
      'TOY',
      'TOYS',
      'GAME',
      'GAMES',
      'DOLL',
      'DOLLY',
      'JIGSAW',
      'PLAYHOUSE',
      'BLOCKS',
      'PUZZLE',
      'SPACEBOY',
      'FELTCRAFT',
      'HARMONICA',
      'DOMINOES',
      'SKITTLES',
      'SKIPPING',
      'CRAYONS',
      'COLOURING',
      'PAINT',
      'KIDS',
      'CHILDRENS',
      'LADDERS',
      'GLIDERS',
    ],
  ],
  ['jewellery', ['NECKLACE', 'BRACELET', 'EARRINGS', 'RING', 'BROOCH', 'PENDANT', 'DIAMANTE']],
  ['garden', ['GARDEN', 'GARDENERS', 'PLANT', 'PLANTER', 'WATERING', 'BIRDHOUSE', 'SEED', 'SEEDS', 'FLOWER', 'GNOME']],
  [
    'bath_beauty',
    ['BATH', 'SOAP', 'BOTTLE', 'TISSUES', 'PLASTERS', 'WARMER', 'TOWEL', 'MIRROR', 'COMPACT', 'LIP', 'HOTTIE'],
  ],
  [
    'home_decor',
    [
      'FRAME',
      'CLOCK',
      'CUSHION',
      'DOORMAT',
      'SIGN',
      'HOOK',
      'HOOKS',
      'HANGER',
      'VASE',
      'DOORSTOP',
      'WALL',
      'DRAWER',
      'KNOB',
      'DECORATION',
      'ORNAMENT',
      'STORAGE',
      'BASKET',
      'HOLDER',
      'RACK',
      'CABINET',
      'THROW',
      'QUILT',
      'BLANKET',
      'WICKER',
      'TRINKET',
      'CHEST',
      'PEGS',
      'DECORATIONS',
      'TRELLIS',
      'UMBRELLA',
      'PIGGY',
    ],
  ],
];
/** StockCodes that are not goods: postage, carriage, manual adjustments, discounts, samples, bad debt, fees. */
export const ONLINE_RETAIL_SERVICE_CODES: ReadonlySet<string> = new Set([
  'POST',
  'DOT',
  'C2',
  'M',
  'm',
  'D',
  'S',
  'B',
  'BANK CHARGES',
  'AMAZONFEE',
  'CRUK',
]);

const categoryIndex = new Map<string, string>();
for (const [category, keywords] of ONLINE_RETAIL_CATEGORY_RULES) {
  for (const keyword of keywords) if (!categoryIndex.has(keyword)) categoryIndex.set(keyword, category);
}
const ruleOrder = new Map(ONLINE_RETAIL_CATEGORY_RULES.map(([category], i) => [category, i]));

/** The category of an Online Retail line (see the mapping rules at the top of this file). */
export function onlineRetailCategory(description: string, stockCode: string): string {
  if (ONLINE_RETAIL_SERVICE_CODES.has(stockCode.trim())) return 'service';
  let best: string | null = null;
  for (const word of description.toUpperCase().split(/[^A-Z0-9'-]+/)) {
    const category = categoryIndex.get(word);
    if (category && (best === null || (ruleOrder.get(category) ?? 0) < (ruleOrder.get(best) ?? 0))) best = category;
  }
  return best ?? 'other';
}

/** GBP decimal string → pence, half away from zero, on the digits (no float arithmetic). Throws when not a number. */
export function priceToMinor(price: string): number {
  const m = /^\s*([+-])?(\d*)(?:\.(\d*))?\s*$/.exec(price);
  const whole = m?.[2] ?? '';
  const fraction = m?.[3] ?? '';
  if (!m || (whole === '' && fraction === ''))
    throw new AppError('RECORD_INVALID', `UnitPrice "${price}" is not a number`);
  const digits = `${fraction}000`;
  let minor = Number(whole || '0') * 100 + Number(digits.slice(0, 2));
  if (Number(digits.charAt(2)) >= 5) minor += 1;
  if (!Number.isSafeInteger(minor)) throw new AppError('RECORD_INVALID', `UnitPrice "${price}" is out of range`);
  return m[1] === '-' && minor !== 0 ? -minor : minor;
}

/** Online Retail InvoiceDate (`YYYY-MM-DD HH:MM[:SS]` or UCI `M/D/YYYY H:MM`), read as UTC → epoch ms. */
export function parseInvoiceDate(value: string): number {
  const iso = /^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*$/.exec(value);
  const uci = iso ? null : /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):(\d{2})(?::(\d{2}))?\s*$/.exec(value);
  // Fields in the order year, month, day, hour, minute, second.
  const parts = iso ? [1, 2, 3, 4, 5, 6].map((i) => iso[i]) : uci ? [3, 1, 2, 4, 5, 6].map((i) => uci[i]) : null;
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = (parts ?? []).map((p) => Number(p ?? 0));
  const ms = parts ? Date.UTC(year, month - 1, day, hour, minute, second) : Number.NaN;
  if (!Number.isSafeInteger(ms)) throw new AppError('RECORD_INVALID', `InvoiceDate "${value}" is not a date`);
  return ms;
}

/** CustomerID as the platform's id: '17850.0' → '17850'; empty → null (a guest order); anything else trimmed. */
export function onlineRetailCustomerId(value: string | undefined): string | null {
  const v = value?.trim() ?? '';
  if (v === '') return null;
  const m = /^(\d+)(?:\.0*)?$/.exec(v);
  return m?.[1] ?? v;
}

function parseQuantity(value: string): number {
  if (!/^\s*[+-]?\d+\s*$/.test(value)) throw new AppError('RECORD_INVALID', `Quantity "${value}" is not an integer`);
  return Number(value);
}

interface OpenInvoice {
  readonly invoiceNo: string;
  readonly part: number;
  readonly firstTimeMs: number;
  lastTimeMs: number;
  customerId: string | null;
  readonly lines: LineItem[];
}

function invoiceTransaction(inv: OpenInvoice): Transaction {
  const base = `${ONLINE_RETAIL_PLATFORM}:${inv.invoiceNo}`;
  return {
    eventId: inv.part === 1 ? base : `${base}:part-${inv.part}`,
    eventTimeMs: inv.firstTimeMs,
    platform: ONLINE_RETAIL_PLATFORM,
    platformCustomerId: inv.customerId,
    orderId: inv.invoiceNo,
    kind: inv.invoiceNo.startsWith('C') ? 'RETURN' : 'PURCHASE',
    lineItems: inv.lines,
    totalMinor: inv.lines.reduce((sum, l) => sum + l.quantity * l.unitPriceMinor, 0),
    currency: 'GBP',
    sessionId: null,
    deviceId: null,
    identity: null,
    couponCode: null, // Online Retail records no coupons
  };
}

/**
 * Groups Online Retail rows into one Transaction per invoice, streaming (see the mapping rules at the top of this
 * file). Transactions come out in order of their invoice's first row, i.e. in event-time order for the date-sorted file.
 * @throws AppError RECORD_INVALID naming the 1-based data row when a Quantity, UnitPrice or InvoiceDate is unreadable
 * (unless `onBadRow` takes it).
 */
export async function* onlineRetailTransactions(
  rows: CsvRecords,
  options: {
    closeAfterMs?: number;
    /** Given: a row with an unreadable Quantity, UnitPrice or InvoiceDate is reported here and skipped (not thrown). */
    onBadRow?: (reason: string) => void;
  } = {},
): AsyncGenerator<Transaction> {
  const closeAfterMs = options.closeAfterMs ?? INVOICE_CLOSE_AFTER_MS;
  const open = new Map<string, OpenInvoice>(); // insertion order = first appearance
  const emittedParts = new Map<string, number>();
  let rowNumber = 0;

  function* closeBefore(thresholdMs: number): Generator<Transaction> {
    for (const [key, inv] of open) {
      if (inv.lastTimeMs >= thresholdMs) return; // keep first-appearance order: never overtake an open invoice
      open.delete(key);
      emittedParts.set(inv.invoiceNo, inv.part);
      yield invoiceTransaction(inv);
    }
  }

  for await (const row of rows) {
    rowNumber++;
    const invoiceNo = (row.InvoiceNo ?? '').trim();
    let timeMs: number;
    let line: LineItem;
    try {
      timeMs = parseInvoiceDate(row.InvoiceDate ?? '');
      const stockCode = row.StockCode ?? '';
      const description = (row.Description ?? '').trim();
      line = {
        productId: stockCode,
        productName: description === '' ? null : description,
        category: onlineRetailCategory(description, stockCode),
        brand: null,
        quantity: parseQuantity(row.Quantity ?? ''),
        unitPriceMinor: priceToMinor(row.UnitPrice ?? ''),
      };
    } catch (err) {
      if (options.onBadRow) {
        options.onBadRow(`invoice ${invoiceNo}: ${describeError(err)}`);
        continue;
      }
      throw new AppError('RECORD_INVALID', `Online Retail data row ${rowNumber} (invoice ${invoiceNo})`, {
        cause: err,
      });
    }
    yield* closeBefore(timeMs - closeAfterMs);
    let inv = open.get(invoiceNo);
    if (!inv) {
      inv = {
        invoiceNo,
        part: (emittedParts.get(invoiceNo) ?? 0) + 1,
        firstTimeMs: timeMs,
        lastTimeMs: timeMs,
        customerId: null,
        lines: [],
      };
      open.set(invoiceNo, inv);
    }
    inv.lastTimeMs = Math.max(inv.lastTimeMs, timeMs);
    inv.customerId ??= onlineRetailCustomerId(row.CustomerID);
    inv.lines.push(line);
  }
  yield* closeBefore(Number.POSITIVE_INFINITY);
}

/**
 * The transactions of an Online Retail CSV byte stream read line by line (csv-lines.ts): a line that is not a record
 * (stray quote, wrong number of columns, not UTF-8) or whose Quantity, UnitPrice or InvoiceDate is unreadable is
 * reported to `onBadLine` with its number and reason, and the rest of the file still runs. `counts` fills as it reads.
 */
export function onlineRetailFile(
  input: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  options: { file: string; onBadLine: (bad: BadLine) => void; closeAfterMs?: number },
): { transactions: AsyncGenerator<Transaction>; counts: CsvLineCounts } {
  const reader = new CsvLineReader({ file: options.file, onBadLine: options.onBadLine });
  const transactions = onlineRetailTransactions(reader.records(input), {
    ...(options.closeAfterMs === undefined ? {} : { closeAfterMs: options.closeAfterMs }),
    // The generator handles a row before it pulls the next: the reader's line is that row's.
    onBadRow: (reason) => {
      reader.refuse(reason);
    },
  });
  return { transactions, counts: reader.counts };
}

/** FEBRL date_of_birth YYYYMMDD → YYYY-MM-DD when it is a real calendar date, else null. */
export function febrlBirthDate(value: string | undefined): string | null {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(value?.trim() ?? '');
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  // Date.UTC rolls 1937-12-33 over into January; a real date survives the round trip unchanged.
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  return `${m[1]}-${m[2]}-${m[3]}`;
}

/** FEBRL street line: "<street_number> <address_1>[, <address_2>]", skipping empty parts; null when nothing is left. */
export function febrlAddress(record: CsvRecord): string | null {
  const street = [record.street_number, record.address_1]
    .map((v) => v?.trim() ?? '')
    .filter((v) => v !== '')
    .join(' ');
  const line = [street, record.address_2?.trim() ?? ''].filter((v) => v !== '').join(', ');
  return line === '' ? null : line;
}

/**
 * One IDENTIFY event per FEBRL record, as if `platform` had sent its customer base (see the mapping rules at the top
 * of this file).
 */
export function febrlEvents(
  records: Iterable<CsvRecord>,
  platform: string,
  options: { salt: string; baseTimeMs: number },
): BehaviorEvent[] {
  const events: BehaviorEvent[] = [];
  let index = 0;
  for (const record of records) {
    const recId = (record.rec_id ?? '').trim();
    const birthDate = febrlBirthDate(record.date_of_birth);
    const digits = (record.soc_sec_id ?? '').replace(/\D/g, '');
    const identity = hashIdentity(
      {
        firstName: record.given_name,
        lastName: record.surname,
        address: febrlAddress(record),
        city: record.suburb,
        postcode: record.postcode,
        birthDate,
        // Passed explicitly (null without a birth date) so the age is relative to baseTimeMs, not the clock.
        ageGroup: ageGroupOf(birthDate, options.baseTimeMs),
      },
      options.salt,
    );
    events.push({
      eventId: `febrl:${platform}:${recId}`,
      eventTimeMs: options.baseTimeMs + index,
      platform,
      platformCustomerId: recId,
      sessionId: null,
      deviceId: null,
      type: 'IDENTIFY',
      productId: null,
      category: null,
      searchQuery: null,
      quantity: null,
      priceMinor: null,
      currency: null,
      orderId: null,
      identity: { ...identity, phoneSha256: digits === '' ? null : hashIdentifier(options.salt, digits) },
      reviewText: null,
      reviewSentiment: null,
    });
    index++;
  }
  return events;
}

/** A platform id from a file name: 'febrl4/dataset4a.csv' → 'dataset4a'; lowercased, [a-z0-9_-] only, ≤ 64 chars. */
export function platformFromFileName(path: string): string {
  const name = (path.split(/[\\/]/).pop() ?? '').replace(/(\.(csv|gz|txt|tsv))+$/i, '');
  const id = name
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return id === '' ? 'febrl' : id;
}

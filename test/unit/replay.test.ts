import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashIdentifier } from '../../processors/producers/identity-hash.js';
import {
  csvRecords,
  febrlBirthDate,
  febrlEvents,
  onlineRetailCategory,
  onlineRetailCustomerId,
  onlineRetailTransactions,
  parseInvoiceDate,
  platformFromFileName,
  priceToMinor,
  type CsvRecord,
} from '../../processors/producers/replay.js';
import { behaviorProblems } from '../../schemas/rules.js';
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const SALT = 'unit-test-salt';

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const row = (invoiceNo: string, date: string, extra: Partial<CsvRecord> = {}): CsvRecord => ({
  InvoiceNo: invoiceNo,
  StockCode: '85123A',
  Description: 'WHITE HANGING HEART T-LIGHT HOLDER',
  Quantity: '6',
  InvoiceDate: date,
  UnitPrice: '2.55',
  CustomerID: '17850.0',
  Country: 'United Kingdom',
  ...extra,
});

describe('Online Retail → Transaction', () => {
  let txs: Transaction[];
  const byInvoice = (no: string) => {
    const tx = txs.find((t) => t.orderId === no);
    if (!tx) throw new Error(`no transaction for ${no}`);
    return tx;
  };
  beforeAll(async () => {
    txs = await collect(onlineRetailTransactions(csvRecords(createReadStream(fixture('online-retail-sample.csv')))));
  });

  it('makes one transaction per invoice, in event-time order, with stable ids', () => {
    expect(txs.map((t) => t.orderId)).toEqual([
      '536365',
      '536366',
      '536381',
      'C536379',
      '536390',
      'C536391',
      '536412',
      '536414',
      '536415',
      '536477',
      'C536543',
      '536544',
      '536589',
      'C542799',
      '542800',
      '542806',
      'C542805',
      '550193',
      'A563185',
      'A563186',
      'A563187',
    ]);
    expect(txs.reduce((n, t) => n + t.lineItems.length, 0)).toBe(49);
    for (let i = 1; i < txs.length; i++) expect(txs[i]!.eventTimeMs).toBeGreaterThanOrEqual(txs[i - 1]!.eventTimeMs);
    for (const tx of txs) {
      expect(tx.eventId).toBe(`online-retail:${tx.orderId}`);
      expect(tx.platform).toBe('online-retail');
      expect(tx.currency).toBe('GBP');
      expect(tx.identity).toBeNull();
      expect(tx.sessionId).toBeNull();
      expect(tx.totalMinor).toBe(tx.lineItems.reduce((s, l) => s + l.quantity * l.unitPriceMinor, 0));
    }
  });

  it('maps a multi-row purchase', () => {
    const tx = byInvoice('536365');
    expect(tx.kind).toBe('PURCHASE');
    expect(tx.platformCustomerId).toBe('17850');
    expect(tx.eventTimeMs).toBe(Date.UTC(2010, 11, 1, 8, 26));
    expect(tx.lineItems).toHaveLength(7);
    expect(tx.lineItems[0]).toEqual({
      productId: '85123A',
      productName: 'WHITE HANGING HEART T-LIGHT HOLDER',
      category: 'lighting',
      brand: null,
      quantity: 6,
      unitPriceMinor: 255,
    });
    expect(tx.totalMinor).toBe(6 * 255 + 6 * 339 + 8 * 275 + 6 * 339 + 6 * 339 + 2 * 765 + 6 * 425);
  });

  it('maps a cancellation to a RETURN with the negative quantities as given', () => {
    const tx = byInvoice('C536391');
    expect(tx.kind).toBe('RETURN');
    expect(tx.lineItems.map((l) => l.quantity)).toEqual([-12, -24, -24, -24]);
    expect(tx.totalMinor).toBe(-(12 * 165 + 3 * 24 * 29));
    const discount = byInvoice('C536379');
    expect(discount.kind).toBe('RETURN');
    expect(discount.lineItems[0]).toMatchObject({ productId: 'D', category: 'service', unitPriceMinor: 2750 });
  });

  it('maps rows without CustomerID to anonymous transactions', () => {
    expect(byInvoice('536544').platformCustomerId).toBeNull();
    expect(byInvoice('536544').lineItems).toHaveLength(5);
    const blank = byInvoice('536414');
    expect(blank.platformCustomerId).toBeNull();
    expect(blank.lineItems[0]).toMatchObject({ productName: null, category: 'other', unitPriceMinor: 0, quantity: 56 });
  });

  it('groups an invoice interleaved with another one', () => {
    const tx = byInvoice('542806');
    expect(tx.lineItems).toHaveLength(11);
    expect(tx.platformCustomerId).toBe('12836');
    expect(tx.eventTimeMs).toBe(Date.UTC(2011, 1, 1, 11, 19));
    expect(byInvoice('C542805').lineItems).toHaveLength(2);
  });

  it('keeps anomalies for the processors to dead-letter instead of fixing them', () => {
    expect(byInvoice('536589')).toMatchObject({ kind: 'PURCHASE', platformCustomerId: null });
    expect(byInvoice('536589').lineItems[0]).toMatchObject({ quantity: -10, unitPriceMinor: 0 });
    expect(byInvoice('550193').lineItems[0]?.unitPriceMinor).toBe(0); // 0.001 GBP
    expect(byInvoice('A563185').lineItems[0]).toMatchObject({
      productId: 'B',
      category: 'service',
      unitPriceMinor: 1106206,
    });
    expect(byInvoice('A563186')).toMatchObject({ kind: 'PURCHASE', totalMinor: -1106206 });
  });

  it('reads quoted descriptions', () => {
    expect(byInvoice('536381').lineItems[0]?.productName).toBe('AIRLINE LOUNGE,METAL SIGN');
    expect(byInvoice('536477').lineItems[0]?.productName).toBe('RECORD FRAME 7" SINGLE SIZE');
  });

  it('emits a late reappearance of an invoice as a further part, and works on plain iterables', async () => {
    const rows = [
      row('1', '2011-01-01 10:00:00'),
      row('2', '2011-01-01 10:20:00'),
      row('1', '2011-01-01 10:40:00'),
      row('3', '2011-01-01 10:40:00', { CustomerID: '' }),
    ];
    const out = await collect(onlineRetailTransactions(rows));
    expect(out.map((t) => t.eventId)).toEqual([
      'online-retail:1',
      'online-retail:2',
      'online-retail:1:part-2',
      'online-retail:3',
    ]);
  });

  it('stops with the row named when a value cannot be represented at all', async () => {
    const rows = [row('1', '2011-01-01 10:00:00'), row('1', '2011-01-01 10:00:00', { UnitPrice: 'n/a' })];
    await expect(collect(onlineRetailTransactions(rows))).rejects.toThrow(/row 2/);
  });

  it('converts prices with decimal arithmetic, rounding half away from zero', () => {
    expect(priceToMinor('2.55')).toBe(255);
    expect(priceToMinor('2.1')).toBe(210);
    expect(priceToMinor('27.5')).toBe(2750);
    expect(priceToMinor('3')).toBe(300);
    expect(priceToMinor('0.0')).toBe(0);
    expect(priceToMinor('0.001')).toBe(0);
    expect(priceToMinor('0.005')).toBe(1);
    expect(priceToMinor('1.005')).toBe(101); // Math.round(1.005 * 100) would give 100
    expect(priceToMinor('-11062.06')).toBe(-1106206);
    expect(priceToMinor('-0.004')).toBe(0);
    expect(() => priceToMinor('')).toThrow();
    expect(() => priceToMinor('1.2.3')).toThrow();
  });

  it('parses dates and customer ids', () => {
    expect(parseInvoiceDate('2010-12-01 08:26:00')).toBe(Date.UTC(2010, 11, 1, 8, 26));
    expect(parseInvoiceDate('12/1/2010 8:26')).toBe(Date.UTC(2010, 11, 1, 8, 26));
    expect(() => parseInvoiceDate('yesterday')).toThrow();
    expect(onlineRetailCustomerId('17850.0')).toBe('17850');
    expect(onlineRetailCustomerId('12346')).toBe('12346');
    expect(onlineRetailCustomerId('')).toBeNull();
    expect(onlineRetailCustomerId(undefined)).toBeNull();
  });

  it('derives categories from description keywords', () => {
    expect(onlineRetailCategory('JUMBO BAG RED RETROSPOT', '85099B')).toBe('bags');
    expect(onlineRetailCategory('60 CAKE CASES VINTAGE CHRISTMAS', '22952')).toBe('christmas');
    expect(onlineRetailCategory('GLASS STAR FROSTED T-LIGHT HOLDER', '21730')).toBe('lighting');
    expect(onlineRetailCategory('SET OF 3 CAKE TINS PANTRY DESIGN', '22720')).toBe('kitchen');
    expect(onlineRetailCategory('FANCY FONT BIRTHDAY CARD,', '21506')).toBe('party');
    expect(onlineRetailCategory('POSTAGE', 'POST')).toBe('service');
    expect(onlineRetailCategory('SOMETHING UNHEARD OF', '99999')).toBe('other');
  });
});

describe('FEBRL → IDENTIFY events', () => {
  const baseTimeMs = Date.UTC(2026, 0, 1);
  let events: BehaviorEvent[];
  const byRec = (id: string) => {
    const ev = events.find((e) => e.platformCustomerId === id);
    if (!ev?.identity) throw new Error(`no event for ${id}`);
    return { ...ev, identity: ev.identity };
  };
  beforeAll(async () => {
    const records = await collect(csvRecords(createReadStream(fixture('febrl-sample.csv')), { trim: true }));
    events = febrlEvents(records, 'febrl1', { salt: SALT, baseTimeMs });
  });

  it('makes one valid IDENTIFY per record with ordered times and stable ids', () => {
    expect(events).toHaveLength(8);
    events.forEach((ev, i) => {
      expect(ev.type).toBe('IDENTIFY');
      expect(ev.eventTimeMs).toBe(baseTimeMs + i);
      expect(ev.eventId).toBe(`febrl:febrl1:${ev.platformCustomerId}`);
      expect(ev.identity?.emailSha256).toBeNull();
      expect(behaviorProblems(ev, { nowMs: baseTimeMs })).toEqual([]);
    });
    expect(events[0]?.platformCustomerId).toBe('rec-223-org');
  });

  it('maps names, address, city and postcode', () => {
    expect(byRec('rec-223-org').identity).toMatchObject({
      firstName: null,
      lastName: 'waller',
      address: '6 tullaroop street, willaroo',
      city: 'st james',
      postcode: '4011',
      birthDate: '1908-12-09',
      ageGroup: '65+',
      deviceFingerprint: null,
    });
    expect(byRec('rec-122-org').identity).toMatchObject({ firstName: 'lachlan', ageGroup: '25-34' });
    expect(byRec('rec-145-org').identity.address).toBe('5 beetaloo street');
    expect(byRec('rec-10-dup-0').identity.address).toBe('maltby circuit, coaling');
    expect(byRec('rec-254-dup-0').identity.address).toBe('13');
  });

  it('hashes the digits of soc_sec_id as the phone', () => {
    expect(byRec('rec-223-org').identity.phoneSha256).toBe(hashIdentifier(SALT, '6988048'));
    expect(byRec('rec-444-org').identity.phoneSha256).toBe(byRec('rec-444-dup-0').identity.phoneSha256);
  });

  it('turns invalid or missing birth dates into null', () => {
    expect(byRec('rec-444-org').identity.birthDate).toBe('1937-12-23');
    expect(byRec('rec-444-dup-0').identity).toMatchObject({ birthDate: null, ageGroup: null });
    expect(byRec('rec-190-dup-0').identity).toMatchObject({ birthDate: null, ageGroup: null });
    expect(febrlBirthDate('20000229')).toBe('2000-02-29');
    expect(febrlBirthDate('19000229')).toBeNull();
    expect(febrlBirthDate('19371233')).toBeNull();
    expect(febrlBirthDate('')).toBeNull();
  });

  it('derives a platform id from the file name', () => {
    expect(platformFromFileName('data/febrl4/dataset4a.csv')).toBe('dataset4a');
    expect(platformFromFileName('My Export.CSV.gz')).toBe('my-export');
    expect(platformFromFileName('___.csv')).toBe('febrl');
  });
});

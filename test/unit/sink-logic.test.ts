import { describe, expect, it } from 'vitest';
import { behaviorRows, deadLetterRows, transactionRows } from '../../processors/warehouse-sink/logic.js';
import { deadLetterOf } from '../../processors/runtime/dead-letter.js';
import { sampleBehavior, sampleTransaction, T0 } from '../fixtures/events.js';

const source = { topic: 'transactions.raw.v1', partition: 2, offset: '41' };

describe('warehouse rows', () => {
  it('maps a transaction to a fact, its lines and the dimensions it mentions', () => {
    const tx = sampleTransaction({ eventId: 'e1', eventTimeMs: T0 + 1_234 });
    const rows = transactionRows(tx, source, T0 + 60_000);
    expect(rows.fact_transaction).toEqual([
      expect.objectContaining({
        event_id: 'e1',
        total_minor: 11_248,
        item_count: 2,
        units: 3,
        event_time: Math.floor((T0 + 1_234) / 1000),
        event_time_ms: T0 + 1_234,
        event_date: '2026-09-01',
        source_offset: '41',
      }),
    ]);
    expect(rows.fact_transaction_line?.map((l) => [l['line_no'], l['amount_minor']])).toEqual([
      [0, 9_998],
      [1, 1_250],
    ]);
    expect(rows.dim_category?.map((c) => c['category_id'])).toEqual(['sports', 'fashion']);
    expect(rows.dim_product?.every((p) => p['version'] === T0 + 1_234)).toBe(true);
  });

  it('is deterministic except for the ingestion time', () => {
    const tx = sampleTransaction();
    const a = transactionRows(tx, source, 1);
    const b = transactionRows(tx, source, 1);
    expect(a).toEqual(b);
  });

  it('maps an anonymous click with empty strings, not nulls (warehouse columns are not Nullable)', () => {
    const rows = behaviorRows(
      sampleBehavior({ platformCustomerId: null, productId: null, category: null }),
      source,
      T0,
    );
    expect(rows.fact_event?.[0]).toEqual(expect.objectContaining({ platform_customer_id: '', product_id: '' }));
    expect(rows.dim_category).toBeUndefined();
  });

  it('keeps a dead letter traceable to its source and its original bytes', () => {
    const dl = deadLetterOf(
      'warehouse-sink',
      {
        topic: 'clicks.raw.v1',
        partition: 1,
        message: {
          key: Buffer.from('k'),
          value: Buffer.from([0, 1, 2]),
          offset: '7',
          timestamp: '1000',
          attributes: 0,
          headers: { h: 'v' },
        },
        code: 'RECORD_INVALID',
        reason: 'because',
      },
      T0,
    );
    expect(dl.originalHeaders).toEqual([{ key: 'h', value: Buffer.from('v') }]);
    expect(
      deadLetterOf(
        'warehouse-sink',
        {
          topic: 'clicks.raw.v1',
          partition: 1,
          message: { key: null, value: null, offset: '7', timestamp: '1', attributes: 0, headers: {} },
          code: 'RECORD_INVALID',
          reason: 'x',
        },
        T0 + 5,
      ).eventId,
    ).toBe(dl.eventId);
    const row = deadLetterRows(dl).dead_letter?.[0];
    expect(row).toEqual(
      expect.objectContaining({ source_offset: 7, original_value_base64: 'AAEC', original_key: 'k' }),
    );
  });
});

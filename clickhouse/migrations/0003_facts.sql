-- Facts. Delivery is at-least-once, so the sink may insert an event twice: each fact table is a ReplacingMergeTree
-- whose sorting key ends with the event's unique id and whose partition comes from the event's own time, so both
-- copies land in one partition and collapse at merge time. Until then read with FINAL (or group by event_id).
-- event_date defaults to the UTC day of event_time and ingested_at to the insert time when the sink omits them.
-- Money is Int64 minor units (pence, cents) of `currency`.

-- A row is one completed order (kind PURCHASE) or return (kind RETURN) on one platform. total_minor is negative for a
-- return; platform_customer_id is '' for a guest order. source_* locate the Kafka record it came from.
CREATE TABLE IF NOT EXISTS fact_transaction
(
    event_id String,
    platform_id String,
    platform_customer_id String,
    order_id String,
    kind String,
    total_minor Int64,
    currency String,
    item_count UInt32,
    units Int32,
    session_id String,
    device_id String,
    event_time DateTime('UTC'),
    event_time_ms UInt64,
    event_date Date DEFAULT toDate(event_time),
    ingested_at DateTime('UTC') DEFAULT now(),
    source_topic String,
    source_partition UInt32,
    source_offset UInt64
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (platform_id, event_date, event_id);

-- A row is one line item of a transaction; line_no is its position in the event's lineItems (stable across replays).
-- quantity > 0 for a purchase, < 0 for a return; amount_minor = quantity * unit_price_minor.
CREATE TABLE IF NOT EXISTS fact_transaction_line
(
    event_id String,
    line_no UInt16,
    platform_id String,
    platform_customer_id String,
    order_id String,
    kind String,
    product_id String,
    category_id String,
    brand String,
    quantity Int32,
    unit_price_minor Int64,
    amount_minor Int64,
    currency String,
    event_time DateTime('UTC'),
    event_date Date DEFAULT toDate(event_time)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (event_date, event_id, line_no);

-- A row is one click-stream event: VIEW | SEARCH | ADD_TO_CART | REMOVE_FROM_CART | CHECKOUT_START | PURCHASE |
-- IDENTIFY. Fields that do not apply to the type are '' or 0.
CREATE TABLE IF NOT EXISTS fact_event
(
    event_id String,
    platform_id String,
    platform_customer_id String,
    session_id String,
    device_id String,
    event_type String,
    product_id String,
    category_id String,
    search_query String,
    quantity Int32,
    price_minor Int64,
    currency String,
    order_id String,
    event_time DateTime('UTC'),
    event_time_ms UInt64,
    event_date Date DEFAULT toDate(event_time),
    ingested_at DateTime('UTC') DEFAULT now(),
    source_topic String,
    source_partition UInt32,
    source_offset UInt64
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(event_date)
ORDER BY (platform_id, event_date, event_id);

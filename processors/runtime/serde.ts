/**
 * Avro serde over a Confluent-compatible schema registry (TopicNameStrategy: subject `<topic>-value`, BACKWARD
 * compatibility). Decoding resolves the writer's schema (from the registry, by the id in the wire header) into our own
 * reader contract, so producers may lag or lead by a compatible version. Errors are classified: bytes that can never
 * decode are RECORD_UNDECODABLE (dead-letter); a registry we cannot reach is DEPENDENCY_UNAVAILABLE (retry).
 */
import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { loadSchema, type SchemaName } from '../../schemas/catalog.js';
import type { TopicSpec } from '../../topics/catalog.js';
import { AppError, describeError } from './errors.js';

/** How long one schema-registry request may take (EventSerde.forUrl). */
export const REGISTRY_TIMEOUT_MS = 15_000;
type RegistryMiddleware = NonNullable<ConstructorParameters<typeof SchemaRegistry>[0]['middlewares']>[number];

/** The contract a schema name stands for, parsed once. */
const types = new Map<SchemaName, avro.Type>();
export function avroType(name: SchemaName): avro.Type {
  let type = types.get(name);
  if (!type) {
    type = avro.Type.forSchema(loadSchema(name) as avro.Schema);
    types.set(name, type);
  }
  return type;
}

/** Paths of the fields that do not fit the contract, e.g. `lineItems.0.quantity`; empty when the value fits. */
export function invalidPaths(name: SchemaName, value: unknown): string[] {
  const paths: string[] = [];
  avroType(name).isValid(value, { errorHook: (path) => paths.push(path.join('.') || '(root)') });
  return paths;
}

/** HTTP status of a registry client error, if it carries one (mappersmith responses do). */
function statusOf(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'status' in err && typeof err.status === 'number') return err.status;
  return undefined;
}

export const subjectOf = (topic: TopicSpec): string => `${topic.name}-value`;

/** {@link EventSerde.decodeKnown}'s answer when the writer's schema has not been met yet. */
export const NOT_KNOWN: unique symbol = Symbol('writer schema not known yet');

/**
 * Confluent-framed Avro records (magic byte, schema id, body) written into shared slabs, the way Node's Buffer pool
 * serves small buffers: avsc's `toBuffer` gives every record a zeroed buffer with an ArrayBuffer of its own (the largest
 * allocation site of the feature processor in `bench -- features`, 1.3 of 20 GB, and external-memory GCs), and framing
 * copied it once more. A returned record is a view of its slab and keeps the slab alive while it is held.
 */
export class FrameWriter {
  private slab: Buffer = Buffer.allocUnsafe(0);
  private pos = 0;

  /** 16 KiB: a record held on to (a retry, a dead letter) keeps no more than that alive. */
  constructor(private readonly slabBytes = 16 * 1024) {}

  /** Throws what avsc throws for a value that does not fit `type`. */
  frame(type: avro.Type, schemaId: number, value: unknown): Buffer {
    let need = HEADER_BYTES + 1;
    for (;;) {
      const start = this.pos;
      if (this.slab.length - start >= need) {
        // encode: the end offset, or minus the bytes it lacked (nothing past the slab is written).
        const end = type.encode(value, this.slab, start + HEADER_BYTES);
        if (end > 0) {
          this.slab[start] = 0;
          this.slab.writeInt32BE(schemaId, start + 1);
          this.pos = end;
          return this.slab.subarray(start, end);
        }
        need = this.slab.length - start - end;
      }
      // A fresh slab; a record larger than a slab gets one of its own size.
      this.slab = Buffer.allocUnsafe(Math.max(this.slabBytes, need));
      this.pos = 0;
    }
  }
}

const HEADER_BYTES = 5;

export class EventSerde {
  private readonly ids = new Map<string, number>();
  private readonly frames = new FrameWriter();
  /** Resolvers from each writer schema met into our reader contract, by contract and writer schema id. */
  private readonly known = new Map<SchemaName, Map<number, avro.Resolver | null>>();

  constructor(
    readonly registry: SchemaRegistry,
    /** Base URL, for the calls the client library does not offer. */
    private readonly url?: string,
    /** How long one of those calls may take (forUrl gives the client library's requests the same bound). */
    private readonly timeoutMs = REGISTRY_TIMEOUT_MS,
  ) {}

  /**
   * A serde talking to the registry at `url` (for Apicurio: `http://host:port/apis/ccompat/v7`). Every registry request
   * ends within `timeoutMs` (the client library sets no timeout: a registry that accepts a connection and never answers
   * would hold a consumer's batch, and with it the consumer's stop, for good); a timeout is DEPENDENCY_UNAVAILABLE,
   * which the processors retry and, past their outage bound, give up on.
   */
  static forUrl(url: string, options: { timeoutMs?: number } = {}): EventSerde {
    const timeout = options.timeoutMs ?? REGISTRY_TIMEOUT_MS;
    const withTimeout: RegistryMiddleware = () => ({
      async prepareRequest(next) {
        const request = await next();
        return request.timeout() ? request : request.enhance({ timeout });
      },
    });
    const registry = new SchemaRegistry(
      { host: url, clientId: 'patternos', middlewares: [withTimeout] },
      { [SchemaType.AVRO]: {} },
    );
    return new EventSerde(registry, url, timeout);
  }

  /**
   * Registers the topic's contract under `<topic>-value` with BACKWARD compatibility (idempotent: the same schema gets
   * the same id). A change that would break existing readers is refused by the registry: AppError CONFIG_INVALID.
   */
  async register(topic: TopicSpec): Promise<number> {
    const cached = this.ids.get(topic.name);
    if (cached !== undefined) return cached;
    const id = await this.registerSchema(subjectOf(topic), loadSchema(topic.schema));
    this.ids.set(topic.name, id);
    return id;
  }

  /** Registers an arbitrary Avro schema under a subject with BACKWARD compatibility; returns its id. */
  async registerSchema(subject: string, schema: object): Promise<number> {
    const register = () =>
      this.registry.register(
        { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
        { subject, compatibility: COMPATIBILITY.BACKWARD },
      );
    try {
      try {
        return (await register()).id;
      } catch (err) {
        // Apicurio answers GET /config/<subject> with NONE (Confluent: 404) for a subject that exists without a rule
        // of its own, and the client then refuses to register. Give the subject its BACKWARD rule and try once more.
        // (The library does not export its error classes; they carry their class name.)
        if (!(err instanceof Error && err.name === 'ConfluentSchemaRegistryCompatibilityError') || !this.url) throw err;
        await this.setCompatibility(subject, 'BACKWARD');
        return (await register()).id;
      }
    } catch (err) {
      const status = statusOf(err);
      if (status === undefined || status >= 500) {
        throw new AppError('DEPENDENCY_UNAVAILABLE', `schema registry unavailable: ${describeError(err)}`, {
          cause: err,
        });
      }
      throw new AppError('CONFIG_INVALID', `schema for ${subject} refused by the registry: ${describeError(err)}`, {
        cause: err,
      });
    }
  }

  /** Sets a subject's compatibility rule through the Confluent API (`PUT /config/<subject>`). */
  async setCompatibility(subject: string, level: 'BACKWARD' | 'NONE'): Promise<void> {
    const res = await fetch(`${this.url}/config/${encodeURIComponent(subject)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: level }),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok) throw new Error(`PUT /config/${subject}: HTTP ${res.status} ${await res.text()}`);
  }

  /** Validates against the contract (RECORD_INVALID naming the bad fields) and encodes in the Confluent wire format. */
  async encode(topic: TopicSpec, value: unknown): Promise<Buffer> {
    return this.frameChecked(topic, await this.register(topic), value);
  }

  /**
   * Encodes many values of one topic (a flush's scores, a round's resolved records) with one registry lookup and one
   * promise for all of them: the same bytes as {@link encode} for each.
   */
  async encodeMany(topic: TopicSpec, values: readonly unknown[]): Promise<Buffer[]> {
    const id = await this.register(topic);
    return values.map((value) => this.frameChecked(topic, id, value));
  }

  private frameChecked(topic: TopicSpec, schemaId: number, value: unknown): Buffer {
    try {
      // avsc validates while serializing; only a failure pays for the walk that names the bad fields.
      return this.frames.frame(avroType(topic.schema), schemaId, value);
    } catch (err) {
      const bad = invalidPaths(topic.schema, value);
      const where = bad.length > 0 ? bad.join(', ') : describeError(err);
      throw new AppError('RECORD_INVALID', `does not fit ${topic.schema} schema at: ${where}`, { cause: err });
    }
  }

  /** Decodes wire-format bytes into the topic's reader contract. */
  async decode<T>(topic: TopicSpec, bytes: Buffer | null): Promise<T> {
    const known = this.decodeKnown(topic, bytes);
    if (known !== NOT_KNOWN) return known as T;
    const schemaId = (bytes as Buffer).readInt32BE(1);
    let resolver: avro.Resolver | null;
    try {
      resolver = await this.resolverFor(topic.schema, schemaId);
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || status === 422) {
        throw new AppError('RECORD_UNDECODABLE', `schema id ${schemaId} is unknown to the registry`, { cause: err });
      }
      if (err instanceof AppError) throw err;
      throw new AppError('DEPENDENCY_UNAVAILABLE', `schema registry: ${describeError(err)}`, { cause: err });
    }
    return this.read(topic.schema, schemaId, resolver, bytes as Buffer) as T;
  }

  /**
   * {@link decode} without a promise when the writer's schema was met before (nearly every record): the value, or
   * NOT_KNOWN when the registry must be asked first. Throws RECORD_UNDECODABLE like decode.
   */
  decodeKnown(topic: TopicSpec, bytes: Buffer | null): unknown {
    if (!bytes || bytes.length === 0) throw new AppError('RECORD_UNDECODABLE', 'empty value (tombstone or no payload)');
    if (bytes.length < 5 || bytes[0] !== 0) {
      throw new AppError('RECORD_UNDECODABLE', 'not Confluent wire format: missing magic byte 0 and schema id');
    }
    const schemaId = bytes.readInt32BE(1);
    const resolver = this.known.get(topic.schema)?.get(schemaId);
    return resolver === undefined ? NOT_KNOWN : this.read(topic.schema, schemaId, resolver, bytes);
  }

  private read(name: SchemaName, schemaId: number, resolver: avro.Resolver | null, bytes: Buffer): unknown {
    try {
      const reader = avroType(name);
      // decode at offset 5 rather than fromBuffer of a subarray: no Buffer object per record.
      const decoded = resolver ? reader.decode(bytes, 5, resolver) : reader.decode(bytes, 5);
      const value: unknown = decoded.value;
      const offset = decoded.offset;
      if (offset !== bytes.length) {
        throw new Error(offset < 0 ? 'truncated buffer' : `trailing data (${bytes.length - offset} bytes)`);
      }
      return value;
    } catch (err) {
      // avsc: truncated buffer, trailing bytes, invalid union index.
      throw new AppError('RECORD_UNDECODABLE', `cannot decode with schema id ${schemaId}: ${describeError(err)}`, {
        cause: err,
      });
    }
  }

  /** A resolver from the writer's schema into our reader contract (null when they are the same), cached per id. */
  private async resolverFor(name: SchemaName, schemaId: number): Promise<avro.Resolver | null> {
    const cached = this.known.get(name)?.get(schemaId);
    if (cached !== undefined) return cached;
    const writer = (await this.registry.getSchema(schemaId)) as unknown as avro.Type;
    const reader = avroType(name);
    let resolver: avro.Resolver | null;
    try {
      resolver = reader.equals(writer) ? null : reader.createResolver(writer);
    } catch (err) {
      throw new AppError(
        'RECORD_UNDECODABLE',
        `writer schema ${schemaId} cannot be read as ${name}: ${describeError(err)}`,
      );
    }
    let byId = this.known.get(name);
    if (!byId) this.known.set(name, (byId = new Map<number, avro.Resolver | null>()));
    byId.set(schemaId, resolver);
    return resolver;
  }
}

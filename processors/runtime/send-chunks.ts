/**
 * Splitting a processor's output into Kafka sends the broker accepts. kafkajs puts one send's messages for a partition
 * in one record batch, and the broker refuses a batch above its message.max.bytes (1 MiB by default): a large consumer
 * batch's outputs (the resolver's first batch, a feature flush of 20,000 scores, a run of dead letters with a 900 KB
 * original) used to crash the processor. Every producer of the project sends through these chunks.
 */
import type { Message, TopicMessages } from 'kafkajs';

/** Bytes of keys, values and headers per send: well under the broker's default message.max.bytes (1 MiB). */
export const MAX_SEND_BYTES = 512 * 1024;
/** Per-message overhead counted on top of key, value and headers (lengths, timestamps, framing), roughly. */
const MESSAGE_OVERHEAD_BYTES = 64;

const byteLength = (v: Buffer | string | null | undefined) =>
  v == null ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length;

/** What a message counts against a send's budget. */
export function messageBytes(m: Pick<Message, 'key' | 'value' | 'headers'>): number {
  let size = MESSAGE_OVERHEAD_BYTES + byteLength(m.key) + byteLength(m.value);
  for (const [k, v] of Object.entries(m.headers ?? {})) size += k.length + byteLength(v == null ? '' : String(v));
  return size;
}

/**
 * Per-topic message lists split into sends of at most `maxBytes` each (a larger single message goes alone), every
 * topic's messages kept in order and consecutive messages of one topic kept together.
 */
export function chunkTopicMessages<M extends Pick<Message, 'key' | 'value' | 'headers'>>(
  outputs: readonly { topic: string; messages: readonly M[] }[],
  maxBytes = MAX_SEND_BYTES,
): { topic: string; messages: M[] }[][] {
  const chunks: { topic: string; messages: M[] }[][] = [];
  let current: { topic: string; messages: M[] }[] = [];
  let bytes = 0;
  for (const { topic, messages } of outputs) {
    for (const message of messages) {
      const size = messageBytes(message);
      if (bytes > 0 && bytes + size > maxBytes) {
        chunks.push(current);
        current = [];
        bytes = 0;
      }
      const last = current.at(-1);
      if (last?.topic === topic) last.messages.push(message);
      else current.push({ topic, messages: [message] });
      bytes += size;
    }
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** One topic's `messages` in order, split so that each part holds at most `maxBytes`. */
export function chunksByBytes<M extends Pick<Message, 'key' | 'value' | 'headers'>>(
  messages: readonly M[],
  maxBytes = MAX_SEND_BYTES,
): M[][] {
  return chunkTopicMessages([{ topic: '', messages }], maxBytes).map((chunk) => chunk[0]?.messages ?? []);
}

/** Messages of several topics, in order, as sends of at most `maxBytes`. */
export function sendsOf(
  messages: readonly { topic: string; message: Message }[],
  maxBytes = MAX_SEND_BYTES,
): TopicMessages[][] {
  return chunkTopicMessages(
    messages.map(({ topic, message }) => ({ topic, messages: [message] })),
    maxBytes,
  );
}

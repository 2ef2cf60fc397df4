/** The one place that builds kafkajs clients, so every processor shares retry, logging and idempotence settings. */
import { Kafka, Partitioners, logLevel, type Producer } from 'kafkajs';
import type { Config } from './config.js';
import { createLogger } from './log.js';

const kafkaLevel = { debug: logLevel.DEBUG, info: logLevel.WARN, warn: logLevel.WARN, error: logLevel.ERROR } as const;

/** A kafkajs client for the configured brokers; kafkajs' own logs go through our JSON logger. */
export function createKafka(config: Config, clientId = config.KAFKA_CLIENT_ID): Kafka {
  const log = createLogger(config.LOG_LEVEL, { component: 'kafkajs' });
  return new Kafka({
    clientId,
    brokers: [...config.KAFKA_BROKERS],
    logLevel: kafkaLevel[config.LOG_LEVEL],
    logCreator:
      () =>
      ({ level, log: entry }) => {
        const { message, ...rest } = entry;
        const fields = rest as Record<string, unknown>;
        // Bounded retries on the idempotent producer are deliberate: a send that still fails rejects the caller's
        // promise (nothing is acknowledged that was not written), and event ids make a whole-batch resend harmless.
        // A new cluster creates its internal topics on first use; kafkajs logs the coordinator's "loading" answers as
        // errors but retries them. They are expected, not actionable.
        const error = fields['error'];
        const retriable = typeof error === 'string' && /coordinator is (loading|not available)/.test(error);
        if (retriable || message.startsWith('Limiting retries for the idempotent producer')) {
          log.debug(message, fields);
          return;
        }
        if (level <= logLevel.ERROR) log.error(message, fields);
        else if (level === logLevel.WARN) log.warn(message, fields);
        else log.debug(message, fields);
      },
    retry: { initialRetryTime: 300, retries: 8 },
  });
}

/**
 * An idempotent producer (acks=all, one in-flight request per broker so retries cannot reorder a partition): a retried
 * send never duplicates or reorders records within a partition.
 */
export function createIdempotentProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // The murmur2 partitioner of the Java client: a key lands on the same partition whichever client produced it.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

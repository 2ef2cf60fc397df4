/**
 * The same four services as docker-compose.yml, as testcontainers, for machines with a Docker engine. Kafka advertises
 * the host port it is published on, so that port is chosen before the container starts.
 */
import { createServer } from 'node:net';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import type { StackEndpoints } from '../../processors/tools/stack/stack.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

export async function startDockerStack(): Promise<{ endpoints: StackEndpoints; stop: () => Promise<void> }> {
  const kafkaPort = await freePort();
  const started: StartedTestContainer[] = [];
  try {
    const [kafka, registry, redis, clickhouse] = await Promise.all([
      new GenericContainer('apache/kafka:3.9.1')
        .withExposedPorts({ container: 9092, host: kafkaPort })
        .withEnvironment({
          KAFKA_NODE_ID: '1',
          KAFKA_PROCESS_ROLES: 'broker,controller',
          KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
          KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${kafkaPort}`,
          KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
          KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
          KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
          KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
          KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
          KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
          KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
          KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
        })
        .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
        .start(),
      new GenericContainer('apicurio/apicurio-registry:3.3.3')
        .withExposedPorts(8080)
        .withWaitStrategy(Wait.forHttp('/apis/ccompat/v7/subjects', 8080))
        .start(),
      new GenericContainer('redis:7')
        .withExposedPorts(6379)
        .withWaitStrategy(Wait.forLogMessage(/Ready to accept/))
        .start(),
      new GenericContainer('clickhouse/clickhouse-server:latest')
        .withExposedPorts(8123)
        .withEnvironment({ CLICKHOUSE_SKIP_USER_SETUP: '1' })
        .withWaitStrategy(Wait.forHttp('/ping', 8123))
        .start(),
    ]);
    started.push(kafka, registry, redis, clickhouse);
    return {
      endpoints: {
        kafkaBrokers: [`127.0.0.1:${kafkaPort}`],
        schemaRegistryUrl: `http://${registry.getHost()}:${registry.getMappedPort(8080)}/apis/ccompat/v7`,
        redisUrl: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
        clickhouseUrl: `http://${clickhouse.getHost()}:${clickhouse.getMappedPort(8123)}`,
      },
      stop: async () => {
        await Promise.all(started.map((c) => c.stop()));
      },
    };
  } catch (err) {
    await Promise.all(started.map((c) => c.stop().catch(() => undefined)));
    throw err;
  }
}

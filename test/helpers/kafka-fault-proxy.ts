/**
 * A TCP proxy in front of the real broker that can hold back the broker's answer to one produce request: the broker
 * has written the records, the client times the request out. That is the network fault under which kafkajs'
 * idempotent producer reuses sequence numbers when sends overlap. Clients reach it through kafkajs' `socketFactory`,
 * so every connection (the advertised broker address included) goes through the proxy.
 */
import net from 'node:net';
import type { ISocketFactory } from 'kafkajs';

const PRODUCE_API_KEY = 0;

/** Splits a Kafka byte stream into size-prefixed frames. */
function framer(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const size = pending.readInt32BE(0);
      if (pending.length < 4 + size) return;
      onFrame(pending.subarray(0, 4 + size));
      pending = pending.subarray(4 + size);
    }
  };
}

export interface KafkaFaultProxy {
  readonly socketFactory: ISocketFactory;
  /** Holds the answer to the next produce request (on any connection) for `delayMs`; later answers queue behind it. */
  delayNextProduceResponse(delayMs: number): void;
  /** Produce answers held back so far. */
  readonly delayed: number;
  close(): Promise<void>;
}

export async function startKafkaFaultProxy(broker: string): Promise<KafkaFaultProxy> {
  const [host = '127.0.0.1', port = '9092'] = broker.split(':');
  let armedDelayMs = 0;
  let delayed = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    sockets.add(client).add(upstream);
    const delays = new Map<number, number>();
    client.on(
      'data',
      framer((frame) => {
        // Request header: size, api_key int16, api_version int16, correlation_id int32.
        if (frame.readInt16BE(4) === PRODUCE_API_KEY) {
          if (armedDelayMs > 0) {
            delays.set(frame.readInt32BE(8), armedDelayMs);
            armedDelayMs = 0;
          }
        }
        upstream.write(frame);
      }),
    );
    let chain = Promise.resolve();
    upstream.on(
      'data',
      framer((frame) => {
        // Response header: size, correlation_id int32. Answers stay in order, as on a real connection.
        const correlationId = frame.readInt32BE(4);
        const delayMs = delays.get(correlationId) ?? 0;
        delays.delete(correlationId);
        if (delayMs > 0) delayed++;
        chain = chain.then(
          () =>
            new Promise<void>((resolve) => {
              setTimeout(() => {
                if (!client.destroyed) client.write(frame);
                resolve();
              }, delayMs);
            }),
        );
      }),
    );
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxyPort = (server.address() as net.AddressInfo).port;
  return {
    socketFactory: ({ onConnect }) => net.connect({ host: '127.0.0.1', port: proxyPort }, onConnect),
    delayNextProduceResponse(delayMs) {
      armedDelayMs = delayMs;
    },
    get delayed() {
      return delayed;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}

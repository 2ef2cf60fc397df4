// A schema registry that accepts a connection and never answers (a stalled JVM, a half-open socket): the serde's
// request ends at its timeout as DEPENDENCY_UNAVAILABLE, which the processors retry and bound, instead of holding the
// consumer's batch for good. The endpoint is a loopback socket that reads and never writes: a network fault, not a
// stand-in registry (the registry itself is exercised by the integration tests).
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../processors/runtime/errors.js';
import { EventSerde } from '../../processors/runtime/serde.js';
import { topicCatalog } from '../../topics/catalog.js';

let server: Server;
const sockets: Socket[] = [];
let port = 0;
beforeAll(async () => {
  server = createServer((socket) => {
    sockets.push(socket); // read, never answer
    socket.on('data', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
});

describe('EventSerde against a registry that never answers', () => {
  it('gives up on a schema lookup at its timeout, as a dependency outage', async () => {
    const serde = EventSerde.forUrl(`http://127.0.0.1:${port}`, { timeoutMs: 300 });
    // Confluent wire format naming a schema id this process has not met: the serde must ask the registry.
    const bytes = Buffer.from([0, 0, 0, 0x30, 0x39, 2, 4, 6]);
    const outcome = await serde.decode(topicCatalog().clicksRaw, bytes).then(
      () => null,
      (err: unknown) => err,
    );
    expect(outcome).toBeInstanceOf(AppError);
    expect((outcome as AppError).code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(sockets.length).toBeGreaterThan(0); // it did ask
  }, 20_000); // without the timeout the lookup never ends, and this bound fails the test
});

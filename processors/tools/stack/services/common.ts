// Process, filesystem and probing helpers shared by the local-stack service modules. Nothing here knows about a
// particular service; the service modules describe what to install, how to launch and how to probe.
import { execFile, spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync, writeSync } from 'node:fs';
import { access, mkdir, readFile, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';

export type ServiceName = 'kafka' | 'registry' | 'redis' | 'clickhouse' | 'prometheus';

export interface StackPorts {
  kafka: number;
  kafkaController: number;
  registry: number;
  registryManagement: number;
  redis: number;
  clickhouseHttp: number;
  clickhouseTcp: number;
  clickhouseInterserver: number;
  prometheus: number;
}

export interface StackConfig {
  /** Folder holding package.json. */
  projectRoot: string;
  /** STACK_DIR, default <projectRoot>/.stack. */
  dataRoot: string;
  /** Downloads and unpacked distributions; survives `reset`. */
  installRoot: string;
  /** Per-service data, logs and pid files; deleted by `reset`. */
  stateRoot: string;
  ports: StackPorts;
  env: NodeJS.ProcessEnv;
}

/** Everything a service module needs for one operation. */
export interface ServiceContext {
  name: ServiceName;
  config: StackConfig;
  log: (line: string) => void;
  /** <stateRoot>/<service>: data, log and pid live here. */
  dataDir: string;
  /** <installRoot>/<service>. */
  installDir: string;
  logFile: string;
  pidFile: string;
}

export interface LaunchSpec {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

export interface ServiceDefinition {
  name: ServiceName;
  /** Env var that, when set, points at the user's own instance: nothing is started locally. */
  externalEnv: string;
  /** Endpoint string as handed to clients. */
  endpoint(config: StackConfig): string;
  /** Every port the service binds, for the "already taken by someone else" check. */
  ports: (keyof StackPorts)[];
  /** What survives `down`/`up`, shown by `status`. */
  persistence: string;
  readyTimeoutMs: number;
  /** Idempotent: makes binaries available; returns a short description of what it did ('' when nothing). */
  install(ctx: ServiceContext): Promise<string>;
  /** Writes config, formats storage and so on; returns the command to spawn detached. */
  prepare(ctx: ServiceContext): Promise<LaunchSpec>;
  /** Whether a process command line is this service started by this stack (guards against recycled pids). */
  ownsProcess(cmdline: string[], ctx: ServiceContext): boolean;
  /**
   * One readiness probe. `logOffset` is the log size just before this stack spawned the process, so a service can look
   * for a "started" line written by this run only; it is undefined when checking a process found already running.
   */
  probe(ctx: ServiceContext, logOffset: number | undefined): Promise<boolean>;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

export async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Last `lines` lines of a file from byte `from` on (so only the current run shows), '' when it does not exist. */
export async function tail(path: string, lines = 20, from = 0): Promise<string> {
  const bytes = await readFile(path).catch(() => Buffer.alloc(0));
  return bytes.subarray(from).toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its output tail on non-zero exit so the caller can show why. */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env, timeout: options.timeoutMs ?? 0, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-30).join('\n');
          reject(new Error(`${command} ${args.join(' ')} failed: ${error.message.split('\n')[0] ?? ''}\n${output}`));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/** Absolute path of an executable on PATH (plus the sbin folders, where Debian puts servers), or undefined. */
export async function which(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const dirs = [...(env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((d) => d !== '');
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, fsConstants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

// dpkg holds a global lock, so apt installs from parallel service setups must take turns.
let aptQueue: Promise<unknown> = Promise.resolve();

/**
 * Returns the path of `binary`, installing Debian package `pkg` with apt-get when it is missing. Only root can do
 * that; anyone else gets an error naming the package and the env var that points the project at their own instance.
 */
export async function ensureAptBinary(
  binaries: string[],
  pkg: string,
  ctx: ServiceContext,
  externalEnv: string,
): Promise<{ path: string; installed: boolean }> {
  return installAptBinary(binaries, pkg, {
    env: ctx.config.env,
    log: (line) => {
      ctx.log(`${ctx.name}: ${line}`);
    },
    otherwise: `set ${externalEnv} to use an instance you run yourself`,
  });
}

/**
 * ensureAptBinary for tools outside the stack (the dashboards' headless browser): looks `binaries` up on PATH and,
 * when none is there, installs `pkg` with apt-get as root (refreshing the package lists once if the install fails).
 * `otherwise` ends the error a non-root user gets, saying what else they can do.
 */
export async function installAptBinary(
  binaries: string[],
  pkg: string,
  options: { env: NodeJS.ProcessEnv; log: (line: string) => void; otherwise: string },
): Promise<{ path: string; installed: boolean }> {
  const find = async (): Promise<string | undefined> => {
    for (const binary of binaries) {
      const found = await which(binary, options.env);
      if (found) return found;
    }
    return undefined;
  };
  const present = await find();
  if (present) return { path: present, installed: false };
  if (process.getuid?.() !== 0) {
    throw new Error(
      `${binaries.join(' or ')} not found on PATH. Install it (sudo apt-get install -y ${pkg}) and rerun, ` +
        `or ${options.otherwise}.`,
    );
  }
  const job = aptQueue.then(async () => {
    if (await find()) return;
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = (): Promise<RunResult> =>
      run('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env, timeoutMs: 15 * 60_000 });
    options.log(`apt-get install ${pkg}`);
    try {
      await install();
    } catch {
      // Fresh containers ship without package lists; refresh once and retry.
      await run('apt-get', ['update'], { env, timeoutMs: 15 * 60_000 });
      await install();
    }
  });
  aptQueue = job.catch(() => undefined);
  await job;
  const installed = await find();
  if (!installed) throw new Error(`apt-get installed ${pkg} but ${binaries.join(' or ')} is still not on PATH`);
  return { path: installed, installed: true };
}

/** Java major version of a java binary ("1.8.0" → 8, "17.0.15" → 17), undefined when it does not run. */
export async function javaMajor(javaBin: string): Promise<number | undefined> {
  try {
    const { stdout, stderr } = await run(javaBin, ['-version'], { timeoutMs: 30_000 });
    const match = /version "(\d+)(?:\.(\d+))?/.exec(`${stderr}\n${stdout}`);
    if (!match) return undefined;
    const first = Number(match[1]);
    return first === 1 ? Number(match[2]) : first;
  } catch {
    return undefined;
  }
}

/** Arguments of a live, non-zombie process, or undefined when there is no such process. */
export async function processCmdline(pid: number): Promise<string[] | undefined> {
  const statText = await readText(`/proc/${pid}/stat`);
  if (statText === undefined) return undefined;
  // Field 3 (after the parenthesised name) is the state; a zombie has exited and only waits to be reaped.
  const state = statText.slice(statText.lastIndexOf(')') + 2, statText.lastIndexOf(')') + 3);
  if (state === 'Z' || state === 'X') return undefined;
  const raw = await readText(`/proc/${pid}/cmdline`);
  if (raw === undefined) return undefined;
  return raw.split('\0').filter((arg) => arg !== '');
}

/** Working directory of a process, undefined when unreadable. */
export async function processCwd(pid: number): Promise<string | undefined> {
  try {
    return await readlink(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

export async function readPid(pidFile: string): Promise<number | undefined> {
  const text = await readText(pidFile);
  const pid = Number(text?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * The pid from the service's pid file if that process is alive and is really ours (command line and working directory
 * match), else undefined. A pid file that does not pass is stale and is removed when `cleanStale` is set.
 */
export async function ownedPid(
  def: ServiceDefinition,
  ctx: ServiceContext,
  cleanStale: boolean,
): Promise<number | undefined> {
  const pid = await readPid(ctx.pidFile);
  if (pid === undefined) return undefined;
  const cmdline = await processCmdline(pid);
  // Every service is spawned with its data dir as working directory, which pins identity beyond the command line.
  const cwd = cmdline ? await processCwd(pid) : undefined;
  const dataDir = await realpath(ctx.dataDir).catch(() => ctx.dataDir);
  if (cmdline && def.ownsProcess(cmdline, ctx) && (cwd === undefined || cwd === dataDir)) return pid;
  if (cleanStale) await rm(ctx.pidFile, { force: true });
  return undefined;
}

/**
 * Spawns a command detached (own session, so it survives this CLI and terminal signals), stdout and stderr appended to
 * the log file, working directory = data dir, and records its pid. Resolves once the OS has started it.
 */
export async function spawnDetached(spec: LaunchSpec, ctx: ServiceContext): Promise<number> {
  await mkdir(ctx.dataDir, { recursive: true });
  const fd = openSync(ctx.logFile, 'a');
  try {
    writeSync(fd, `\n==== ${new Date().toISOString()} starting: ${spec.command} ${spec.args.join(' ')}\n`);
    const child = spawn(spec.command, spec.args, {
      cwd: ctx.dataDir,
      env: spec.env ?? ctx.config.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${spec.command} did not start`);
    await writeFile(ctx.pidFile, `${pid}\n`);
    return pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * Stops a process this stack started: SIGTERM to its process group, wait up to `graceMs`, then SIGKILL. The command
 * line is re-checked right before each signal so a pid recycled meanwhile is never hit. Returns whether it had to kill.
 */
export async function stopProcess(
  pid: number,
  isOurs: (cmdline: string[]) => boolean,
  graceMs: number,
): Promise<{ forced: boolean }> {
  const signal = async (sig: NodeJS.Signals): Promise<boolean> => {
    const cmdline = await processCmdline(pid);
    if (!cmdline || !isOurs(cmdline)) return false;
    try {
      // detached:true made it a process-group leader; the group also covers any helper it forked.
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        return false;
      }
    }
    return true;
  };
  const gone = async (): Promise<boolean> => (await processCmdline(pid)) === undefined;
  if (!(await signal('SIGTERM'))) return { forced: false };
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (await gone()) return { forced: false };
    await sleep(200);
  }
  await signal('SIGKILL');
  for (let i = 0; i < 50 && !(await gone()); i++) await sleep(100);
  return { forced: true };
}

/** True when something already listens on 127.0.0.1:port (tested by trying to bind it ourselves). */
export function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'EADDRINUSE' || error.code === 'EACCES');
    });
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      server.close(() => {
        resolve(false);
      });
    });
  });
}

/** Opens a TCP connection, optionally sends `send` and resolves with what arrives until `until` matches or timeout. */
export function tcpExchange(
  port: number,
  send: string | undefined,
  until: RegExp | undefined,
  timeoutMs = 2000,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let received = '';
    let settled = false;
    const socket = connect({ port, host: '127.0.0.1' });
    const finish = (value: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => {
      finish(undefined);
    }, timeoutMs);
    socket.once('connect', () => {
      if (send === undefined || until === undefined) {
        finish('');
        return;
      }
      socket.write(send);
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (until?.test(received)) finish(received);
    });
    socket.once('error', () => {
      finish(undefined);
    });
    socket.once('close', () => {
      finish(until?.test(received) ? received : undefined);
    });
  });
}

/** GET with a short timeout; undefined on any network error. */
export async function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string } | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: response.status, body: await response.text() };
  } catch {
    return undefined;
  }
}

/** Maven on PATH, installed from apt when missing (root only). */
export async function mavenBinary(ctx: ServiceContext, externalEnv: string): Promise<string> {
  return (await ensureAptBinary(['mvn'], 'maven', ctx, externalEnv)).path;
}

/**
 * Runs Maven, retrying once: two installs resolving into the same ~/.m2 at the same moment can trip over each other's
 * partial downloads, and the second attempt finds the finished files.
 */
export async function runMaven(mvn: string, args: string[], cwd: string): Promise<void> {
  try {
    await run(mvn, args, { cwd, timeoutMs: 20 * 60_000 });
  } catch {
    await run(mvn, args, { cwd, timeoutMs: 20 * 60_000 });
  }
}

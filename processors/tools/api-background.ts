/**
 * The demo leaves the prediction API running, like the stack, so the ad server's calls (and the README's curl line)
 * work after it: `npm run start:api` as a detached process, its log in `out/api.log` and its pid in `out/api.pid`.
 * A previous demo's API (the pid in that file, if it is still our entrypoint) is stopped first, so a re-run serves
 * the current code.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../runtime/config.js';

const OUT = 'out';
const PID_FILE = join(OUT, 'api.pid');
const LOG_FILE = join(OUT, 'api.log');
const ENTRY = 'processors/api/main.ts';

function cmdlineOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return null;
  }
}

/** Stops the API a previous demo left running (only if the pid is still that entrypoint). */
export async function stopBackgroundApi(): Promise<boolean> {
  let pid: number;
  try {
    pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  } catch {
    return false;
  }
  rmSync(PID_FILE, { force: true });
  if (!Number.isInteger(pid) || !cmdlineOf(pid)?.includes(ENTRY)) return false;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && cmdlineOf(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return true;
}

/** Starts the API detached with this process's environment; resolves with its URL and pid once /health answers. */
export async function startBackgroundApi(config: Config): Promise<{ url: string; pid: number; log: string }> {
  await stopBackgroundApi();
  mkdirSync(OUT, { recursive: true });
  const log = openSync(LOG_FILE, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY], {
    detached: true,
    stdio: ['ignore', log, log],
    env: process.env,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the prediction API');
  child.unref();
  writeFileSync(PID_FILE, `${pid}\n`);
  const host = config.API_HOST.includes(':') ? `[${config.API_HOST}]` : config.API_HOST;
  const url = `http://${host}:${config.API_PORT}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!cmdlineOf(pid)) throw new Error(`the prediction API exited at startup; see ${LOG_FILE}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return { url, pid, log: LOG_FILE };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`the prediction API did not answer on ${url} within 60 s; see ${LOG_FILE}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

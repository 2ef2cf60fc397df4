/**
 * Throwaway resources a command holds while it runs (a scratch run's topics, registry subjects, Redis keys and
 * database; benchmark parts it forked), released when the command is interrupted (Ctrl-C, SIGTERM) as well as when it
 * ends. Before this, an interrupted `npm run bench -- pipeline` left 19 topics, ~20,000 Redis keys and a ClickHouse
 * database behind each time, and the shared services slowed as they piled up.
 *
 * Commands opt in with {@link releaseOnInterrupt} (benchmarks, evaluations, the hostile-input run); a command that
 * handles its signals itself (chaos) or a test runner does not call it, and holding then costs nothing.
 */

import { within } from '../runtime/shutdown.js';

interface Held {
  readonly what: string;
  readonly release: () => Promise<void>;
}

const held: Held[] = [];

/** How long each release may take on an interrupt before the next one goes ahead. */
const RELEASE_MS = 60_000;

/**
 * Holds `release` until the returned function is called (the command released the resource itself). On an interrupt,
 * what is still held is released newest first, as `finally` blocks would have: parts forked on a run stop before
 * the run's topics and keys go.
 */
export function hold(what: string, release: () => Promise<void>): () => void {
  const entry: Held = { what, release };
  held.push(entry);
  return () => {
    const at = held.indexOf(entry);
    if (at >= 0) held.splice(at, 1);
  };
}

/** What is held now, newest last (tests, and the interrupt's message). */
export function heldResources(): readonly string[] {
  return held.map((h) => h.what);
}

/** Releases everything still held, newest first, each bounded by `ms`; a failure is reported and the rest go on. */
export async function releaseAll(ms = RELEASE_MS, report: (line: string) => void = console.error): Promise<void> {
  while (held.length > 0) {
    const entry = held.pop() as Held;
    try {
      if ((await within(entry.release, ms)) === 'late')
        report(`could not release ${entry.what} within ${ms / 1000} s; left behind`);
    } catch (err) {
      report(`could not release ${entry.what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

let installed = false;

/**
 * On SIGINT or SIGTERM, releases what is held and exits with 130 or 143 (128 + the signal's number, as a shell
 * reports it). A second signal exits at once. Installed once per process.
 */
export function releaseOnInterrupt(): void {
  if (installed) return;
  installed = true;
  let releasing = false;
  const handler = (signal: NodeJS.Signals) => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (releasing) process.exit(code);
    releasing = true;
    const what = heldResources();
    if (what.length > 0) console.error(`${signal}: releasing ${what.join(', ')} (a second ${signal} exits at once)`);
    void releaseAll().finally(() => process.exit(code));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

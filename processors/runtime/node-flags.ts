/**
 * Node flags every stream processor's process runs with (the npm start scripts, the demo, and the processes the
 * benchmarks and `npm run chaos` fork pass the same ones; a unit test keeps the scripts in line).
 *
 * `--max-semi-space-size=64` (MB; Node 20's default is 16): a flush holds its features, hash fields, state encodings
 * and Redis commands for the length of its round trips, so with the default young generation most of them survive two
 * scavenges, are promoted, and every few flushes cost a mark-compact of the whole partition-owned state. With 64 MB
 * they mostly die young. Measured on `bench -- features` (300k events, 20k customers, back to back, two runs each):
 * 136–137 → 109–124 µs of processor CPU per event. It costs up to ~200 MB more resident memory per process.
 */
export const PROCESSOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

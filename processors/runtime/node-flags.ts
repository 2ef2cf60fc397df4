/**
 * Node flags every stream processor's process runs with (the npm start scripts, the demo, and the processes the
 * benchmarks and `npm run chaos` fork pass the same ones; a unit test keeps the scripts in line).
 *
 * `--max-semi-space-size=128` (MB; Node 20's default is 16): a flush holds its features, hash fields, state encodings
 * and Redis commands for the length of its round trips, so with the default young generation most of them survive two
 * scavenges, are promoted, and every few flushes cost a mark-compact of the whole partition-owned state. With a larger
 * young generation they mostly die young. Measured on `bench -- features`: 16 → 64 MB (300k events, 20k customers, two
 * runs each) 136–137 → 109–124 µs of processor CPU per event; 64 → 128 MB (1,000,000 events, 50,000 customers,
 * alternated, two runs each) 81, 87 → 71, 75 µs, where scavenges had taken 13 of the run's ~75 s of CPU (426 of
 * them, ~31 ms each: the survivors are copied). 256 MB against 128, alternated: 71, 80 against 78, 86 (within the
 * machine's drift), so not worth its memory. It costs up to ~400 MB more resident memory per process than Node's
 * default.
 */
export const PROCESSOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=128'];

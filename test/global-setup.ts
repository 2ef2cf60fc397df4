/**
 * Resolves the real services once per integration run and hands their endpoints to every test file via `inject`:
 * 1. endpoints from the environment (KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL, CLICKHOUSE_URL) when all are set;
 * 2. else containers through testcontainers when a Docker engine answers;
 * 3. else the project's local stack (processors/tools/stack), started if needed and left running for the next run.
 */
import type { TestProject } from 'vitest/node';
import { startDockerStack } from './helpers/docker-stack.js';
import { ensureStack, type StackEndpoints } from '../processors/tools/stack/stack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    endpoints: StackEndpoints;
  }
}

async function dockerAvailable(): Promise<boolean> {
  if (process.env['PATTERNOS_TEST_DOCKER'] === '0') return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = process.env;
  const configured = ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'REDIS_URL', 'CLICKHOUSE_URL'].every((k) => env[k]);
  let teardown: () => Promise<void> = () => Promise.resolve();
  let endpoints: StackEndpoints;
  if (!configured && (await dockerAvailable())) {
    const docker = await startDockerStack();
    endpoints = docker.endpoints;
    teardown = docker.stop;
    console.log('[global-setup] services: testcontainers');
  } else {
    const started = Date.now();
    endpoints = await ensureStack({
      log: (line) => {
        console.log(`[stack] ${line}`);
      },
    });
    console.log(`[global-setup] services: ${configured ? 'environment' : 'local stack'} (${Date.now() - started} ms)`);
  }
  project.provide('endpoints', endpoints);
  return teardown;
}

// Kafka 3.9.1, single-node KRaft, from Maven Central jars (processors/tools/stack/kafka/pom.xml) run on the `java`
// found on PATH.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { LaunchSpec, ServiceContext, ServiceDefinition } from './common.js';
import { ensureAptBinary, exists, javaMajor, mavenBinary, readText, run, runMaven, tcpExchange } from './common.js';

const POM = fileURLToPath(new URL('../kafka/pom.xml', import.meta.url));
const LOG4J = fileURLToPath(new URL('../kafka/log4j.properties', import.meta.url));
const TEMPLATE = fileURLToPath(new URL('../kafka/server.properties.tmpl', import.meta.url));

// Fixed so that formatting is reproducible; it is base64url of 16 bytes, which is what KRaft expects.
const CLUSTER_ID = 'cGF0dGVybm9zLXN0YWNrIQ';
const EXTERNAL_ENV = 'KAFKA_BROKERS';
const READY_LINE = 'Kafka Server started';

const libsDir = (ctx: ServiceContext): string => join(ctx.installDir, 'libs');
const propsFile = (ctx: ServiceContext): string => join(ctx.dataDir, 'server.properties');
const kraftLogDir = (ctx: ServiceContext): string => join(ctx.dataDir, 'kraft-logs');

async function javaBinary(ctx: ServiceContext): Promise<string> {
  // Kafka 3.9 runs on 11+; the project standard is 17 from PATH, and Debian's default JRE is 17 on bookworm.
  const { path } = await ensureAptBinary(['java'], 'default-jre-headless', ctx, EXTERNAL_ENV);
  const major = await javaMajor(path);
  if (major === undefined || major < 11) {
    throw new Error(`kafka: ${path} is Java ${major ?? '?'}; Kafka 3.9 needs Java 11 or newer (17 recommended)`);
  }
  return path;
}

export const kafka: ServiceDefinition = {
  name: 'kafka',
  externalEnv: EXTERNAL_ENV,
  endpoint: (config) => `127.0.0.1:${config.ports.kafka}`,
  ports: ['kafka', 'kafkaController'],
  persistence: 'topics and offsets persist (KRaft log dir)',
  readyTimeoutMs: 90_000,

  async install(ctx) {
    const java = javaBinary(ctx);
    // Checked in parallel with the download; a failure surfaces where it is awaited below.
    void java.catch(() => undefined);
    // The marker holds the pom's hash: editing the pom (say, a version bump) reinstalls, anything else reuses.
    const pomHash = createHash('sha256')
      .update(await readFile(POM))
      .digest('hex');
    const marker = join(ctx.installDir, '.installed');
    if ((await readText(marker))?.trim() === pomHash && (await exists(libsDir(ctx)))) {
      await java;
      return '';
    }
    const mvn = await mavenBinary(ctx, EXTERNAL_ENV);
    await rm(libsDir(ctx), { recursive: true, force: true });
    await mkdir(ctx.installDir, { recursive: true });
    ctx.log('kafka: downloading jars from Maven Central (mvn dependency:copy-dependencies)');
    await runMaven(
      mvn,
      ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${libsDir(ctx)}`],
      ctx.installDir,
    );
    const jars = await readdir(libsDir(ctx));
    if (!jars.some((jar) => jar.startsWith('kafka_2.13-'))) {
      throw new Error(`kafka: mvn finished but ${libsDir(ctx)} has no kafka_2.13 jar`);
    }
    await writeFile(marker, `${pomHash}\n`);
    await java;
    return `${jars.length} jars`;
  },

  async prepare(ctx): Promise<LaunchSpec> {
    const java = await javaBinary(ctx);
    await mkdir(kraftLogDir(ctx), { recursive: true });
    // Regenerated every start so port overrides apply; the template is the source of truth.
    const template = await readFile(TEMPLATE, 'utf8');
    const values: Record<string, string> = {
      KAFKA_PORT: String(ctx.config.ports.kafka),
      CONTROLLER_PORT: String(ctx.config.ports.kafkaController),
      LOG_DIR: kraftLogDir(ctx),
    };
    await writeFile(
      propsFile(ctx),
      template.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => values[key] ?? whole),
    );
    const classpath = `${libsDir(ctx)}/*`;
    // KRaft refuses to start on an unformatted log dir; formatting is skipped once meta.properties exists.
    if (!(await exists(join(kraftLogDir(ctx), 'meta.properties')))) {
      await run(
        java,
        [
          '-cp',
          classpath,
          `-Dlog4j.configuration=${pathToFileURL(LOG4J).href}`,
          'kafka.tools.StorageTool',
          'format',
          '-t',
          CLUSTER_ID,
          '-c',
          propsFile(ctx),
          '--ignore-formatted',
        ],
        { cwd: ctx.dataDir, timeoutMs: 120_000 },
      );
    }
    return {
      command: java,
      args: [
        '-Xms256m',
        '-Xmx1g',
        '-XX:+UseG1GC',
        '-XX:MaxGCPauseMillis=20',
        '-XX:InitiatingHeapOccupancyPercent=35',
        '-Djava.awt.headless=true',
        // Keeps the listener an IPv4 socket so `ss` shows plain 127.0.0.1.
        '-Djava.net.preferIPv4Stack=true',
        `-Dlog4j.configuration=${pathToFileURL(LOG4J).href}`,
        '-cp',
        classpath,
        'kafka.Kafka',
        propsFile(ctx),
      ],
    };
  },

  ownsProcess: (cmdline, ctx) => cmdline.includes('kafka.Kafka') && cmdline.includes(propsFile(ctx)),

  async probe(ctx, logOffset) {
    if (logOffset !== undefined) {
      // The port opens before the broker has caught up with its metadata; the log line marks real readiness.
      const log = await readFile(ctx.logFile).catch(() => Buffer.alloc(0));
      if (!log.subarray(logOffset).toString('utf8').includes(READY_LINE)) return false;
    }
    return (await tcpExchange(ctx.config.ports.kafka, undefined, undefined)) !== undefined;
  },
};

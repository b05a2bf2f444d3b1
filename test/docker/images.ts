/**
 * What the Docker tests need and how they decide to run: a Docker engine that answers, and the
 * images scripts/docker-images.sh builds without any registry (names and source hash computed as
 * scripts/docker-lib.sh computes them). Tests never pull: a missing image is a reason to skip.
 *
 * Where CI asks for Docker (EMO_DIR_REQUIRE_DOCKER=1, set by .ci/run and `npm run test:docker`),
 * a missing engine or image fails the test instead, with the same reason.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { dockerAvailable } from '../../src/local/docker-jobs.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

/** Debian bookworm (debootstrap) with this host's Node. */
export const BASE_IMAGE = `emo-dir-base:bookworm-node${process.versions.node}`;
/** containers/Dockerfile.cpu built on BASE_IMAGE with the host's node_modules. */
export const WORKER_IMAGE = 'emo-dir-worker:cpu';
export const SOURCE_HASH_LABEL = 'org.emo-dir.source-hash';

export const DOCKER_REQUIRED = process.env.EMO_DIR_REQUIRE_DOCKER === '1';
const BUILD_HINT = 'build it with `bash scripts/docker-images.sh` (`npm run test:docker` builds and runs)';

async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(REPO, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) found.push(...(await filesUnder(path)));
    else if (entry.isFile()) found.push(path);
  }
  return found;
}

/** scripts/docker-lib.sh's source_hash: sha256 of the `sha256sum` lines of the image's sources, in byte order. */
export async function workerSourceHash(): Promise<string> {
  const files = [...(await filesUnder('src')), 'package.json', 'package-lock.json', 'tsconfig.json', 'containers/Dockerfile.cpu', 'containers/worker.ts'];
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let lines = '';
  for (const file of files) {
    const digest = createHash('sha256').update(await readFile(join(REPO, file))).digest('hex');
    lines += `${digest}  ${file}\n`;
  }
  return createHash('sha256').update(lines).digest('hex');
}

async function imageLabel(image: string, label: string): Promise<string | undefined> {
  const { stdout } = await run('docker', ['image', 'inspect', '--format', `{{index .Config.Labels ${JSON.stringify(label)}}}`, image]);
  return stdout.trim();
}

/** Why the Docker tests cannot run here (undefined: they can): engine, then each image. */
export async function dockerUnavailable(images: readonly ('base' | 'worker')[]): Promise<string | undefined> {
  const engine = await dockerAvailable();
  if (!engine.ok) return `no Docker engine here (${engine.reason})`;
  for (const which of images) {
    const image = which === 'base' ? BASE_IMAGE : WORKER_IMAGE;
    let hash: string | undefined;
    try {
      hash = await imageLabel(image, SOURCE_HASH_LABEL);
    } catch {
      return `the image ${image} is not on this engine (tests never pull images); ${BUILD_HINT}`;
    }
    if (which === 'worker' && hash !== (await workerSourceHash())) {
      return `the image ${image} was built from other sources than this tree; ${BUILD_HINT}`;
    }
  }
  return undefined;
}

/**
 * Whether a Docker test may go on: true, or false after skipping it with the reason. Where CI
 * requires Docker the reason fails the test instead.
 */
export async function dockerReady(t: TestContext, images: readonly ('base' | 'worker')[]): Promise<boolean> {
  const reason = await dockerUnavailable(images);
  if (reason === undefined) return true;
  assert.ok(!DOCKER_REQUIRED, `EMO_DIR_REQUIRE_DOCKER=1, but ${reason}`);
  t.skip(reason);
  return false;
}

// The GPU worker image (containers/Dockerfile) cannot be built here (no registry, no GPU), so what
// can be checked without building it is checked: every base image is pinned by digest, every
// download is verified against a pinned sha256 before use, NVIDIA's apt sources are gone before
// any apt-get, no install script downloads an unpinned libtensorflow, and the image requires a GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DOCKERFILE = fileURLToPath(new URL('../../containers/Dockerfile', import.meta.url));
const BUILD_LIBTENSORFLOW = fileURLToPath(new URL('../../containers/build-libtensorflow.sh', import.meta.url));

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  /** Index of the build stage (-1: global ARGs before the first FROM). */
  readonly stage: number;
}

/** Instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const result: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    pending += `${line.replace(/\\$/, '')} `;
    if (line.endsWith('\\')) continue;
    const [keyword, ...rest] = pending.trim().split(/\s+/);
    if (keyword.toUpperCase() === 'FROM') stage++;
    result.push({ keyword: keyword.toUpperCase(), args: rest.join(' '), stage });
    pending = '';
  }
  return result;
}

const parsed = instructions(readFileSync(DOCKERFILE, 'utf8'));
const SHA256 = /^[0-9a-f]{64}$/;
const DIGEST = /@sha256:[0-9a-f]{64}$/;

/** ARG defaults of one stage (global ARGs are visible to FROM lines only). */
function argDefaults(stage: number): Map<string, string> {
  const defaults = new Map<string, string>();
  for (const { args } of parsed.filter((i) => i.stage === stage && i.keyword === 'ARG')) {
    const [name, value] = args.split('=', 2);
    if (value !== undefined) defaults.set(name, value);
  }
  return defaults;
}

test('every base image is pinned by digest', () => {
  const globals = argDefaults(-1);
  const froms = parsed.filter((i) => i.keyword === 'FROM');
  assert.ok(froms.length >= 3);
  for (const { args } of froms) {
    const image = args.split(/\s+/)[0].replace(/^\$\{(\w+)\}$/, (_, name: string) => globals.get(name) ?? `<unset ${name}>`);
    assert.match(image, DIGEST, `FROM ${args} -> ${image}`);
  }
  assert.match(globals.get('CUDA_IMAGE')!, /^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu22\.04@sha256:/);
});

test('every download is checked against a pinned sha256 before it is used', () => {
  const downloads = parsed.filter((i) => i.keyword === 'RUN' && /\bcurl\b/.test(i.args) && !/apt-get/.test(i.args));
  assert.equal(downloads.length, 2, 'Node.js and libtensorflow');
  for (const run of downloads) {
    const check = /echo "\$\{(\w+)\} +[^"]+" \| sha256sum -c -/.exec(run.args);
    assert.ok(check, `no sha256sum -c in: ${run.args}`);
    const pinned = argDefaults(run.stage).get(check[1]);
    assert.match(pinned ?? '', SHA256, `${check[1]} must default to a sha256`);
    const extract = run.args.search(/\btar -x/);
    assert.ok(extract > run.args.indexOf('sha256sum -c'), 'extracted only after the check');
  }
  assert.equal(argDefaults(parsed.find((i) => i.args.includes('LIBTENSORFLOW_SHA256'))!.stage).get('LIBTENSORFLOW_URL'),
    'https://storage.googleapis.com/tensorflow/versions/2.18.0/libtensorflow-gpu-linux-x86_64.tar.gz');
});

test('NVIDIA apt sources are removed before every apt-get; no install script fetches libtensorflow', () => {
  const aptRuns = parsed.filter((i) => i.keyword === 'RUN' && i.args.includes('apt-get update'));
  assert.ok(aptRuns.length >= 4);
  for (const run of aptRuns) {
    const removal = run.args.indexOf('rm -f /etc/apt/sources.list.d/cuda*.list');
    assert.ok(removal >= 0 && removal < run.args.indexOf('apt-get update'), run.args);
  }
  const installs = parsed.filter((i) => i.keyword === 'RUN' && /\bnpm (ci|install)\b/.test(i.args));
  assert.equal(installs.length, 1);
  assert.match(installs[0].args, /--ignore-scripts/);
  assert.match(parsed.map((i) => i.args).join('\n'), /node-pre-gyp install --build-from-source/);
});

test('the image requires a GPU and keeps the CUDA JIT cache where a host volume can hold it', () => {
  const finalStage = Math.max(...parsed.map((i) => i.stage));
  const env = parsed.filter((i) => i.stage === finalStage && i.keyword === 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /EMO_DIR_REQUIRE_GPU=1/);
  assert.match(env, /CUDA_CACHE_PATH=\/var\/cache\/emo-dir\/cuda/);
  const entry = parsed.find((i) => i.stage === finalStage && i.keyword === 'ENTRYPOINT');
  assert.equal(entry?.args, '["node", "--import", "tsx", "containers/worker.ts"]');
});

test('build-libtensorflow.sh refuses a builder image that is not pinned by digest', () => {
  const run = spawnSync('bash', [BUILD_LIBTENSORFLOW], { env: { ...process.env, BUILDER_IMAGE: 'tensorflow/build:2.18-python3.11' }, encoding: 'utf8' });
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /BUILDER_IMAGE must be an image pinned by digest/);
});

// The LocalStack mode's S3 wiring: `emo-dir run --store s3://bucket/prefix --endpoint URL` puts
// the spec and the model in S3, runs the Lambda handlers against an S3Store, and gives the
// workers what they need to open that store from EMO_DIR_STORE alone. Checked against s3rver
// (an S3 emulator that needs no Docker) with test handlers and a worker that opens its store as
// containers/worker.ts does. The compose file's LocalStack is checked only where Docker runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { dockerAvailable } from '../../src/local/docker-jobs.ts';
import { runCommand } from '../../src/local/command.ts';
import type { HandlerContext, LocalHandlers } from '../../src/local/run.ts';
import { S3Store } from '../../src/store/s3-store.ts';
import { runKeys } from '../../src/store/keys.ts';
import { getJson, putJson, type ObjectStore } from '../../src/store/object-store.ts';
import { startS3rver, type RunningS3rver } from '../store/s3rver.ts';

const S3_WORKER = fileURLToPath(new URL('../e2e/fixtures/s3-worker.ts', import.meta.url));
const FIXTURE_MODEL = fileURLToPath(new URL('../dir/fixtures/fmnist-resnet-4k', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RUN_ID = 's3-wiring';
const SUBNETS = ['k1', 'k2'];

type Json = Record<string, unknown>;

/** Handlers that do the pipeline's bookkeeping (not its algorithm) against the store they are given. */
function testHandlers(seen: ObjectStore[]): (context: HandlerContext) => LocalHandlers {
  return ({ store }) => {
    seen.push(store);
    return {
      plan: async (event) => {
        const { runId, specKey } = event as { runId: string; specKey: string };
        const spec = (await getJson(store, specKey)) as Json;
        const keys = runKeys(runId);
        await putJson(store, keys.manifest, { model: spec.model });
        return { manifestKey: keys.manifest, subnetworks: SUBNETS };
      },
      merge: async (event) => {
        const keys = runKeys((event as { runId: string }).runId);
        await Promise.all(SUBNETS.map((subnet) => getJson(store, keys.subnet(subnet).front)));
        await putJson(store, keys.merge.jointFront, {});
        return { jointFrontKey: keys.merge.jointFront, targets: ['flops-30'] };
      },
      report: async (event) => {
        const keys = runKeys((event as { runId: string }).runId);
        await putJson(store, keys.report.json, { ok: true });
        await store.put(keys.report.html, '<!DOCTYPE html><html></html>');
        return { reportKey: keys.report.json, htmlKey: keys.report.html };
      },
    };
  };
}

describe('emo-dir run with an s3:// store and --endpoint (s3rver)', () => {
  let s3: RunningS3rver;
  let dir: string;
  const savedEnv = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  before(async () => {
    // s3rver checks signatures against fixed credentials; the CLI and its workers take the
    // environment's (LocalStack's `test` only when there are none).
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    s3 = await startS3rver('emo-dir-local');
    dir = await mkdtemp(join(tmpdir(), 'emo-dir-s3-wiring-'));
  });
  after(async () => {
    for (const [name, value] of [
      ['AWS_ACCESS_KEY_ID', savedEnv.id],
      ['AWS_SECRET_ACCESS_KEY', savedEnv.secret],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await s3?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('uploads spec and model, runs handlers and workers against S3, and reports S3 locations', async () => {
    const specPath = join(dir, 'spec.json');
    await writeFile(
      specPath,
      JSON.stringify({ runId: RUN_ID, model: FIXTURE_MODEL, dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 0.3 }] }),
    );
    // `localhost`, as a user types it: the CLI uses path-style URLs, the workers get 127.0.0.1.
    const endpoint = s3.endpoint.replace('127.0.0.1', 'localhost');
    const location = `s3://${s3.bucket}/local`;
    const seen: ObjectStore[] = [];
    let stdout = '';
    let stderr = '';
    const code = await runCommand([specPath, '--store', location, '--endpoint', endpoint, '--json', '--workers', '2'], {
      loadHandlers: async () => testHandlers(seen),
      out: (text) => {
        stdout += text;
      },
      err: (text) => {
        stderr += text;
      },
      signals: new EventEmitter() as unknown as Pick<NodeJS.Process, 'on' | 'off'>,
      runOptions: {
        workerCommand: [process.execPath, '--import', 'tsx', S3_WORKER],
        progressStream: { write: () => true },
        // The workers must find the store through the runner's environment, not this process's.
        workerEnv: { AWS_ENDPOINT_URL_S3: '', NODE_OPTIONS: '' },
      },
    });
    assert.equal(code, 0, stderr);

    const result = JSON.parse(stdout) as Json;
    assert.equal(result.store, location);
    assert.equal(result.report, `${location}/runs/${RUN_ID}/report.html`);
    assert.equal(result.reportJson, `${location}/runs/${RUN_ID}/report.json`);

    // The handlers got an S3Store on the emulator, path-style.
    assert.equal(seen.length, 1);
    assert.ok(seen[0] instanceof S3Store);
    assert.equal(seen[0].location, location);

    const store = new S3Store({
      bucket: s3.bucket,
      prefix: 'local',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    const keys = runKeys(RUN_ID);
    const spec = (await getJson(store, keys.spec)) as Json;
    assert.equal(spec.model, `${keys.prefix}model/`);
    // The local model directory was uploaded file by file, byte for byte.
    for (const file of ['model.json', 'weights.bin']) {
      const uploaded = Buffer.from(await store.get(`${keys.prefix}model/${file}`));
      assert.ok(uploaded.equals(await readFile(join(FIXTURE_MODEL, file))), `${file} differs in S3`);
    }
    // Each worker opened the store from EMO_DIR_STORE with the endpoint as an IP.
    const expectedEndpoint = s3.endpoint;
    for (const subnet of SUBNETS) {
      assert.deepEqual(await getJson(store, keys.subnet(subnet).front), { store: location, endpoint: expectedEndpoint, attempt: '1' });
    }
    assert.deepEqual(await getJson(store, keys.target('flops-30').metrics), { store: location, endpoint: expectedEndpoint, attempt: '1' });
  });

  it('says so when the store cannot be reached, and refuses --jobs docker with a directory store', async () => {
    let stderr = '';
    const deps = {
      loadHandlers: async () => testHandlers([]),
      out: () => undefined,
      err: (text: string) => {
        stderr += text;
      },
      signals: new EventEmitter() as unknown as Pick<NodeJS.Process, 'on' | 'off'>,
    };
    const specPath = join(dir, 'spec.json');
    const missingBucket = await runCommand([specPath, '--store', 's3://no-such-bucket/x', '--endpoint', s3.endpoint], deps);
    assert.equal(missingBucket, 1);
    assert.match(stderr, /cannot use the store s3:\/\/no-such-bucket\/x at http:\/\/127\.0\.0\.1:\d+: .*is LocalStack running\?/);
    stderr = '';
    assert.equal(await runCommand([specPath, '--store', join(dir, 'store'), '--jobs', 'docker'], deps), 2);
    assert.match(stderr, /--jobs docker needs an s3:\/\/ --store/);
    stderr = '';
    assert.equal(await runCommand([specPath, '--store', join(dir, 'store'), '--endpoint', s3.endpoint], deps), 2);
    assert.match(stderr, /--endpoint is for an s3:\/\/ --store/);
  });
});

const LOCALSTACK_IMAGE = 'localstack/localstack:4.4';

/** Why the compose file cannot be run here without pulling anything, or undefined when it can. */
async function composeUnavailable(): Promise<string | undefined> {
  const docker = await dockerAvailable();
  if (!docker.ok) return `no Docker engine here (${docker.reason})`;
  const run = promisify(execFile);
  const compose = await run('docker', ['compose', 'version']).then(
    () => undefined,
    (error: unknown) => `no docker compose plugin (${String((error as { stderr?: string }).stderr ?? error).trim().split('\n')[0]})`,
  );
  if (compose !== undefined) return compose;
  // Tests never pull: the image must already be on this engine.
  return run('docker', ['image', 'inspect', LOCALSTACK_IMAGE]).then(
    () => undefined,
    () => `${LOCALSTACK_IMAGE} is not on this engine (tests never pull images; docker pull it where a registry is reachable)`,
  );
}

describe('docker-compose.yml (LocalStack)', () => {
  it('starts LocalStack with S3 and the bucket, healthy', async (t) => {
    const missing = await composeUnavailable();
    if (missing !== undefined) {
      t.skip(`${missing}: LocalStack cannot start; the S3 wiring is checked against s3rver above`);
      return;
    }
    const compose = promisify(execFile);
    // Safety nets for a hung compose only; LocalStack's health check decides when it is up.
    await compose('docker', ['compose', 'up', '-d', '--wait', '--pull', 'never'], { cwd: REPO, timeout: 15 * 60_000 });
    try {
      const response = await fetch('http://127.0.0.1:4566/_localstack/health');
      const health = (await response.json()) as { services?: Record<string, string> };
      assert.match(health.services?.s3 ?? '', /available|running/);
      const store = new S3Store({
        bucket: 'emo-dir',
        endpoint: 'http://127.0.0.1:4566',
        forcePathStyle: true,
        region: 'us-east-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      await store.put('probe/compose.txt', 'ok');
      assert.equal(Buffer.from(await store.get('probe/compose.txt')).toString(), 'ok');
    } finally {
      await compose('docker', ['compose', 'down'], { cwd: REPO, timeout: 5 * 60_000 });
    }
  });
});

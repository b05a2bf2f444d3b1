// `emo-dir plan`: the command line around the plan preview (the checks and the estimate are
// covered in test/dir and test/e2e/plan-refusals.test.ts).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../src/cli/plan.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'emo-dir-plan-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function plan(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, { out: (text) => (stdout += text), err: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

describe('emo-dir plan', () => {
  it('refuses a bad command line with the usage (exit 2)', async () => {
    const none = await plan();
    assert.equal(none.code, 2);
    assert.match(none.stderr, /expected one <spec\.json>, got 0\nusage: emo-dir plan/);
    assert.equal((await plan('a.json', '--frobnicate')).code, 2);
  });

  it('names an unreadable or invalid spec file, and a GPU without a documented throughput (exit 1)', async () => {
    const missing = await plan(join(dir, 'none.json'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /none\.json/);
    const invalid = join(dir, 'invalid.json');
    await writeFile(invalid, JSON.stringify({ model: 'zoo:resnet20', dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 2 }] }));
    assert.match((await plan(invalid)).stderr, /invalid .*invalid\.json:\n {2}- targets\[0\]\.value: /);
    const valid = join(dir, 'valid.json');
    await writeFile(valid, JSON.stringify({ model: 'zoo:fmnist-resnet', dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 0.5 }] }));
    const gpu = await plan(valid, '--gpu', 'g5.xlarge');
    assert.equal(gpu.code, 1);
    assert.match(gpu.stderr, /no documented throughput for GPU "g5\.xlarge"/);
    const sweep = join(dir, 'sweep.json');
    await writeFile(sweep, JSON.stringify({ models: ['zoo:resnet20'], dataset: { name: 'fashion-mnist' }, targets: [{ kind: 'flopsCut', value: 0.5 }] }));
    assert.match((await plan(sweep)).stderr, /a sweep spec .* is planned per model/);
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { installPolyfills, withResolvers } from '../../src/local/polyfills.ts';

type WithResolvers = <T>() => { promise: Promise<T>; resolve: (value: T) => void; reject: (reason?: unknown) => void };

describe('polyfills', () => {
  it('gives Promise.withResolvers to a Node without it (a fresh Node 20 process) and the library then runs a Task', () => {
    // A child process, so this test sees the runtime as the CLI does, not after other tests' installs.
    const script = `
      const before = typeof Promise.withResolvers;
      const { installPolyfills } = await import(${JSON.stringify(new URL('../../src/local/polyfills.ts', import.meta.url).href)});
      const installed = installPolyfills();
      const { promise, resolve } = Promise.withResolvers();
      resolve(42);
      const value = await promise;
      const { StateMachine } = await import('aws-local-stepfunctions');
      const machine = new StateMachine({ StartAt: 'T', States: { T: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:f', End: true } } });
      const output = await machine.run({ n: 1 }, { overrides: { taskResourceLocalHandlers: { T: async (input) => ({ doubled: input.n * 2 }) } } }).result;
      console.log(JSON.stringify({ before, installed, value, output, again: installPolyfills() }));
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}');
    const major = Number(process.versions.node.split('.')[0]);
    assert.equal(result.before, major >= 22 ? 'function' : 'undefined');
    assert.deepEqual(result.installed, major >= 22 ? [] : ['Promise.withResolvers']);
    assert.equal(result.value, 42);
    assert.deepEqual(result.output, { doubled: 2 });
    assert.deepEqual(result.again, [], 'installing twice changes nothing');
  });

  it('never replaces an existing implementation', () => {
    const promise = Promise as unknown as { withResolvers?: unknown };
    const original = Object.getOwnPropertyDescriptor(Promise, 'withResolvers');
    const mine = (): string => 'mine';
    Object.defineProperty(Promise, 'withResolvers', { configurable: true, writable: true, value: mine });
    try {
      assert.deepEqual(installPolyfills(), []);
      assert.equal(promise.withResolvers, mine);
    } finally {
      if (original === undefined) delete promise.withResolvers;
      else Object.defineProperty(Promise, 'withResolvers', original);
    }
  });

  it('the installed function settles like the spec says: resolve, reject, and subclass construction', async () => {
    const original = Object.getOwnPropertyDescriptor(Promise, 'withResolvers');
    delete (Promise as unknown as { withResolvers?: unknown }).withResolvers;
    try {
      installPolyfills();
      const polyfilled = (Promise as unknown as { withResolvers: WithResolvers }).withResolvers;
      const ok = polyfilled<string>();
      ok.resolve('yes');
      assert.equal(await ok.promise, 'yes');
      const bad = polyfilled<string>();
      bad.reject(new Error('no'));
      await assert.rejects(bad.promise, /no/);
      class Tracked<T> extends Promise<T> {}
      const sub = (Promise as unknown as { withResolvers: WithResolvers }).withResolvers.call(Tracked);
      assert.ok(sub.promise instanceof Tracked);
      assert.equal(Object.keys(Promise).includes('withResolvers'), false, 'not enumerable');
    } finally {
      if (original === undefined) delete (Promise as unknown as { withResolvers?: unknown }).withResolvers;
      else Object.defineProperty(Promise, 'withResolvers', original);
    }
    const plain = withResolvers<number>();
    plain.resolve(1);
    assert.equal(await plain.promise, 1);
  });
});

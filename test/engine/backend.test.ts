/** Backend selection: the fallback order, clear errors, once-per-process activation. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseBackend, engineInfo, initEngine, parseBackendName, tf } from '../../src/engine/backend.ts';

function missing(specifier: string): Error {
  return Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
}

/** An importer where only `installed` load; the others fail like an absent package. */
function importer(installed: readonly string[], broken: readonly string[] = []): (s: string) => Promise<unknown> {
  return async (specifier) => {
    if (broken.includes(specifier)) throw new Error(`libtensorflow.so: cannot open shared object file\nstack...`);
    if (installed.includes(specifier)) return {};
    throw missing(specifier);
  };
}

describe('chooseBackend', () => {
  it('prefers tfjs-node-gpu, then tfjs-node', async () => {
    const gpu = await chooseBackend(undefined, importer(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']));
    assert.deepEqual([gpu.backend, gpu.provider], ['tensorflow', '@tensorflow/tfjs-node-gpu']);
    const cpuNode = await chooseBackend(undefined, importer(['@tensorflow/tfjs-node']));
    assert.deepEqual([cpuNode.backend, cpuNode.provider], ['tensorflow', '@tensorflow/tfjs-node']);
    assert.deepEqual(cpuNode.skipped, ['@tensorflow/tfjs-node-gpu not installed']);
  });

  it('falls back to wasm and says why', async () => {
    const choice = await chooseBackend(undefined, importer(['@tensorflow/tfjs-backend-wasm'], ['@tensorflow/tfjs-node-gpu']));
    assert.equal(choice.backend, 'wasm');
    assert.deepEqual(choice.skipped, [
      '@tensorflow/tfjs-node-gpu failed to load: libtensorflow.so: cannot open shared object file',
      '@tensorflow/tfjs-node not installed',
    ]);
  });

  it('fails clearly when tensorflow is requested but unavailable', async () => {
    await assert.rejects(chooseBackend('tensorflow', importer(['@tensorflow/tfjs-backend-wasm'])), (error: Error) => {
      assert.match(error.message, /backend 'tensorflow' requested but unavailable/);
      assert.match(error.message, /@tensorflow\/tfjs-node-gpu not installed; @tensorflow\/tfjs-node not installed/);
      assert.match(error.message, /EMO_DIR_BACKEND=wasm/);
      return true;
    });
  });

  it('does not touch the tensorflow packages when wasm or cpu is requested', async () => {
    const wasm = await chooseBackend('wasm', importer(['@tensorflow/tfjs-backend-wasm']));
    assert.deepEqual([wasm.backend, wasm.skipped], ['wasm', []]);
    const cpu = await chooseBackend('cpu', importer([]));
    assert.equal(cpu.backend, 'cpu');
  });

  it('with the real importer, picks tensorflow if installed, else wasm', async () => {
    const choice = await chooseBackend(undefined);
    if (choice.backend === 'wasm') assert.equal(choice.skipped.length, 2);
    else assert.equal(choice.backend, 'tensorflow');
  });
});

describe('parseBackendName', () => {
  it('accepts the three names and rejects others with the source', () => {
    assert.equal(parseBackendName('wasm', 'x'), 'wasm');
    assert.equal(parseBackendName(undefined, 'x'), undefined);
    assert.equal(parseBackendName('', 'x'), undefined);
    assert.throws(() => parseBackendName('gpu', 'EMO_DIR_BACKEND'), /EMO_DIR_BACKEND: unknown backend 'gpu', expected one of tensorflow\|wasm\|cpu/);
  });
});

describe('initEngine', () => {
  it('reports an unavailable tensorflow backend, then falls back by default to wasm, once', async () => {
    delete process.env.EMO_DIR_BACKEND;
    const lines: string[] = [];
    const log = (line: string): void => {
      lines.push(line);
    };
    const noNode = importer(['@tensorflow/tfjs-backend-wasm']);
    await assert.rejects(initEngine({ backend: 'tensorflow', importModule: noNode, log }), /backend 'tensorflow' requested but unavailable/);
    assert.equal(engineInfo(), undefined, 'a failed request leaves the engine uninitialised');

    const realWasm = async (specifier: string): Promise<unknown> => (specifier.includes('tfjs-node') ? Promise.reject(missing(specifier)) : import(specifier));
    assert.equal(await initEngine({ importModule: realWasm, log }), 'wasm');
    assert.equal(tf.getBackend(), 'wasm');
    assert.equal(lines.length, 1, `one log line, got ${JSON.stringify(lines)}`);
    assert.match(lines[0], /^emo-dir engine: backend=wasm via @tensorflow\/tfjs-backend-wasm threads=1 simd=(on|off) kernels=fast/);
    assert.match(lines[0], /@tensorflow\/tfjs-node-gpu not installed; @tensorflow\/tfjs-node not installed/);
    assert.equal(engineInfo()?.threads, 1);

    // Once per process: a repeat returns the same backend without logging; a switch is an error.
    assert.equal(await initEngine({ log }), 'wasm');
    assert.equal(lines.length, 1);
    await assert.rejects(initEngine({ backend: 'cpu' }), /already initialised with backend 'wasm', cannot switch to 'cpu'/);
  });
});

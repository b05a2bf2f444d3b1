/**
 * Loads the weights train_torch.py exported (weights.json + weights.bin, already in tfjs layout)
 * into a zoo-built fmnist-resnet56, by layer name and weight name. Every layer with weights must
 * be covered exactly once with the right shape; anything else is an error naming the layer.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tf } from '../../src/engine/backend.ts';

interface ExportedWeight {
  readonly layer: string;
  readonly name: string;
  readonly shape: number[];
}

export async function loadTorchWeights(model: tf.LayersModel, dir: string): Promise<void> {
  const manifestPath = join(dir, 'weights.json');
  const entries = JSON.parse(await readFile(manifestPath, 'utf8')) as ExportedWeight[];
  const bytes = await readFile(join(dir, 'weights.bin'));
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const byKey = new Map<string, Float32Array>();
  let offset = 0;
  for (const entry of entries) {
    const size = entry.shape.reduce((a, b) => a * b, 1);
    if (offset + size > floats.length) throw new Error(`${manifestPath}: ${entry.layer}/${entry.name} runs past the end of weights.bin`);
    byKey.set(`${entry.layer}/${entry.name}`, floats.subarray(offset, offset + size));
    offset += size;
  }
  if (offset !== floats.length) throw new Error(`${manifestPath}: weights.bin has ${floats.length} floats, the manifest describes ${offset}`);
  const used = new Set<string>();
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const values = layer.weights.map((weight) => {
      // tfjs names weights `<layer>/<name>` (e.g. stage1_block0_bn1/moving_mean).
      const name = weight.originalName.split('/').pop()!;
      const key = `${layer.name}/${name}`;
      const data = byKey.get(key);
      if (!data) throw new Error(`${manifestPath}: no weight ${key} for layer ${layer.name}`);
      const size = weight.shape.reduce<number>((a, b) => a * (b ?? 1), 1);
      if (data.length !== size) throw new Error(`${manifestPath}: ${key} has ${data.length} values, the tfjs layer expects [${weight.shape.join(', ')}]`);
      used.add(key);
      return tf.tensor(data, weight.shape as number[], 'float32');
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
  const unused = [...byKey.keys()].filter((key) => !used.has(key));
  if (unused.length > 0) throw new Error(`${manifestPath}: weights no tfjs layer takes: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', ...' : ''}`);
}

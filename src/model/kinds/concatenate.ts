/**
 * Concatenate. Along the channel axis the inputs' channels are laid side by side (DenseNet,
 * Inception); along another axis (rare: stacking maps spatially) channel c of every input lands
 * in channel c of the output, so those channels are coupled one by one.
 */
import { isLastAxis, refuse } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const concatenate: LayerKind = {
  classNames: ['Concatenate'],
  role: 'passThrough',
  flow(node, inputs, context) {
    if (inputs.length < 2) refuse(node, `has ${inputs.length} input; a concatenation needs two or more`);
    const rank = node.outputShape.length;
    if (isLastAxis(node.config.axis, rank)) {
      inputs.forEach((input, i) => {
        if (input.kind !== 'channels') refuse(node, `input '${node.inputs[i]}' is flattened; concatenating flattened tensors is not supported`);
      });
      const ids = new Int32Array(inputs.reduce((sum, input) => sum + input.ids.length, 0));
      let offset = 0;
      for (const input of inputs) {
        ids.set(input.ids, offset);
        offset += input.ids.length;
      }
      return { kind: 'channels', ids, spatial: 1 };
    }
    const [first, ...rest] = inputs;
    if (first.kind !== 'channels' || rank < 3) {
      refuse(node, `concatenation along axis ${JSON.stringify(node.config.axis)} of a tensor without a separate channel axis is not supported`);
    }
    for (const other of rest) {
      if (other.kind !== 'channels' || other.ids.length !== first.ids.length) {
        refuse(node, `concatenation along axis ${JSON.stringify(node.config.axis)} needs the same channels in every input`);
      }
      for (let p = 0; p < first.ids.length; p++) context.couple(first.ids[p], other.ids[p], false);
    }
    return first;
  },
};

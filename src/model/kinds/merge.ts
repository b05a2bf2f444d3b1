/**
 * Element-wise merges of several tensors: channel c of every input meets channel c of the
 * others, so those channels are coupled one by one (whatever each input's own make-up: a
 * concatenation added to a single convolution couples each concatenated channel with its
 * counterpart). An input with one channel broadcast over the others (a spatial attention map)
 * couples nothing. Summing streams (Add, Subtract, Average, Maximum, Minimum) makes the channels
 * residual; a gate (Multiply: squeeze-and-excitation's [N,1,1,C] x [N,H,W,C]) does not.
 */
import { refuse } from './kind.ts';
import type { FlowContext, FlowLayout, GraphNode, LayerKind } from './kind.ts';

function mergeFlow(stream: boolean) {
  return (node: GraphNode, inputs: readonly FlowLayout[], context: FlowContext): FlowLayout => {
    if (inputs.length < 2) refuse(node, `has ${inputs.length} input; a merge needs two or more`);
    const wide = inputs.filter((layout) => layout.ids.length > 1 || layout.spatial > 1);
    const [first, ...rest] = wide.length > 0 ? wide : inputs;
    for (const other of rest) {
      if (other.kind !== first.kind || other.ids.length !== first.ids.length || other.spatial !== first.spatial) {
        refuse(
          node,
          `its inputs (${node.inputs.join(', ')}) have different channel layouts ` +
            `(${inputs.map((l) => (l.kind === 'flatten' ? `${l.spatial}x${l.ids.length} flattened` : `${l.ids.length} channels`)).join(' vs ')}); ` +
            'only equal widths, or one channel broadcast over all, can be merged channel by channel',
        );
      }
      for (let p = 0; p < first.ids.length; p++) context.couple(first.ids[p], other.ids[p], stream);
    }
    return first;
  };
}

export const streamMerge: LayerKind = {
  classNames: ['Add', 'Subtract', 'Average', 'Maximum', 'Minimum'],
  role: 'passThrough',
  flow: mergeFlow(true),
};

export const gateMerge: LayerKind = {
  classNames: ['Multiply'],
  role: 'passThrough',
  flow: mergeFlow(false),
};

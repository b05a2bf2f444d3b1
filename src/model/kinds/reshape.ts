/**
 * Reshape, in the cases that keep every channel identifiable:
 * - the last axis stays the channel axis ([N, C] <-> [N, 1, 1, C], [N, H, W, C] -> [N, H*W, C]);
 * - a channels-last tensor flattened to [N, S*C] (like Flatten);
 * - a flattened tensor back to [N, ..., C] with the same S and C (unflatten).
 * Any other reshape mixes channels with other axes and is refused.
 */
import { lastDim, refuse, spatialPositions } from './kind.ts';
import type { FlowLayout, GraphNode, LayerConfig, LayerKind } from './kind.ts';

type Case = 'same-channels' | 'flatten' | 'unflatten' | 'same-flatten';

function reshapeCase(node: GraphNode, input: FlowLayout): Case {
  const inShape = node.inputShapes[0];
  const outShape = node.outputShape;
  const outLast = lastDim(node, outShape);
  if (inShape.slice(1).some((d) => typeof d !== 'number') || outShape.slice(1).some((d) => typeof d !== 'number')) {
    refuse(node, `shapes [${inShape.join(', ')}] -> [${outShape.join(', ')}] have unknown sizes`);
  }
  if (input.kind === 'channels') {
    if (outLast === input.ids.length) return 'same-channels';
    if (outShape.length === 2 && outLast === input.ids.length * spatialPositions(inShape)) return 'flatten';
  } else {
    if (outShape.length === 2 && outLast === input.ids.length * input.spatial) return 'same-flatten';
    if (outLast === input.ids.length && spatialPositions(outShape) === input.spatial) return 'unflatten';
  }
  return refuse(
    node,
    `reshaping [${inShape.join(', ')}] to [${outShape.join(', ')}] mixes channels with other axes; ` +
      'only reshapes that keep the channel axis last (or flatten / unflatten it channels-last) can be pruned',
  );
}

export const reshape: LayerKind = {
  classNames: ['Reshape'],
  role: 'passThrough',
  flow(node, inputs) {
    if (inputs.length !== 1) refuse(node, `has ${inputs.length} inputs; one expected`);
    const input = inputs[0];
    switch (reshapeCase(node, input)) {
      case 'same-channels':
      case 'same-flatten':
        return input;
      case 'flatten':
        return { kind: 'flatten', ids: input.ids, spatial: spatialPositions(node.inputShapes[0]) };
      case 'unflatten':
        return { kind: 'channels', ids: input.ids, spatial: 1 };
    }
  },
  prunedConfig(config: LayerConfig, node, kept) {
    const target = node.config.targetShape;
    if (!target) return config;
    // The last entry is the channel count (or S*C when flattening); -1 is inferred by tfjs.
    const last = target[target.length - 1];
    if (last === -1) return config;
    return { ...config, targetShape: [...target.slice(0, -1), kept.output.length] };
  },
};

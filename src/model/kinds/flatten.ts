/**
 * Flatten of a channels-last tensor [N, ..., C] to [N, S*C]: feature f = s*C + c, so the next
 * Dense's rows for channel c are every C-th row from c. Channels-first flattening interleaves
 * differently and is refused (a silent wrong prune otherwise).
 */
import { onlyInput, refuse, requireChannelsLast, spatialPositions } from './kind.ts';
import type { LayerKind } from './kind.ts';

export const flatten: LayerKind = {
  classNames: ['Flatten'],
  role: 'passThrough',
  flow(node, inputs) {
    const input = onlyInput(node, inputs);
    requireChannelsLast(node);
    const shape = node.inputShapes[0];
    if (input.kind === 'flatten' || shape.length === 2) return input;
    if (shape.slice(1).some((d) => typeof d !== 'number')) refuse(node, `spatial size of [${shape.join(', ')}] is unknown`);
    return { kind: 'flatten', ids: input.ids, spatial: spatialPositions(shape) };
  },
};

/**
 * The layer kinds the pruning library understands, by tfjs class name. A class not listed here
 * is refused by the channel analysis with the layer's name and, for classes people commonly
 * meet, why.
 */
import { batchNormalization } from './batch-normalization.ts';
import { concatenate } from './concatenate.ts';
import { conv2d } from './conv2d.ts';
import { conv2dTranspose } from './conv2d-transpose.ts';
import { dense } from './dense.ts';
import { depthwiseConv2d } from './depthwise-conv2d.ts';
import { elementwise } from './elementwise.ts';
import { flatten } from './flatten.ts';
import { globalPooling } from './global-pooling.ts';
import { inputLayer } from './input.ts';
import type { LayerKind } from './kind.ts';
import { layerNormalization } from './layer-normalization.ts';
import { gateMerge, streamMerge } from './merge.ts';
import { prelu } from './prelu.ts';
import { reshape } from './reshape.ts';
import { separableConv2d } from './separable-conv2d.ts';
import { spatial } from './spatial.ts';

export const LAYER_KINDS: readonly LayerKind[] = [
  inputLayer,
  conv2d,
  dense,
  separableConv2d,
  conv2dTranspose,
  depthwiseConv2d,
  batchNormalization,
  layerNormalization,
  prelu,
  elementwise,
  spatial,
  globalPooling,
  streamMerge,
  gateMerge,
  concatenate,
  flatten,
  reshape,
];

const byClass = new Map<string, LayerKind>();
for (const kind of LAYER_KINDS) {
  for (const className of kind.classNames) {
    if (byClass.has(className)) throw new Error(`layer class '${className}' is claimed by two layer kinds`);
    byClass.set(className, kind);
  }
}

/** Every layer class the analysis understands. */
export const SUPPORTED_CLASSES: ReadonlySet<string> = new Set(byClass.keys());

/** Why some classes people meet are refused (the analysis adds the layer's name). */
const REFUSALS: Readonly<Record<string, string>> = {
  Lambda: 'a Lambda layer runs arbitrary code, so which channels it reads and writes is unknown',
  Conv1D: '1-D convolutions are not supported (2-D CNNs only)',
  Conv3D: '3-D convolutions are not supported (2-D CNNs only)',
  Conv3DTranspose: '3-D convolutions are not supported (2-D CNNs only)',
  Permute: 'permuting axes moves the channel axis',
  RepeatVector: 'repeating a vector adds an axis in front of the channels',
  Dot: 'a dot product mixes channels of its inputs',
  Embedding: 'embeddings are not part of a CNN the pruner understands',
  Masking: 'masking is a sequence-model layer',
  TimeDistributed: 'wrappers hide the wrapped layer from the analysis',
  Bidirectional: 'recurrent layers are not supported',
  LSTM: 'recurrent layers are not supported',
  GRU: 'recurrent layers are not supported',
  SimpleRNN: 'recurrent layers are not supported',
  ConvLSTM2D: 'recurrent layers are not supported',
};

/** The kind of a layer class, or undefined with the reason to give. */
export function layerKind(className: string): LayerKind | undefined {
  return byClass.get(className);
}

export function refusalReason(className: string): string {
  return (
    REFUSALS[className] ??
    `layer class '${className}' is not one the channel analysis knows (a custom or unsupported layer), so pruning around it could be wrong`
  );
}

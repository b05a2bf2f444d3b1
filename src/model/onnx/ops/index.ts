/** The op table of the importer: ONNX op type -> converter. Anything else is refused. */
import type { Converter } from '../context.ts';
import {
  convertClip,
  convertElu,
  convertHardSigmoid,
  convertHardSwish,
  convertLeakyRelu,
  convertPRelu,
  convertRelu,
  convertSigmoid,
  convertSoftmax,
  convertTanh,
} from './activation.ts';
import { convertArithmetic } from './arithmetic.ts';
import { convertConv, convertConvTranspose } from './conv.ts';
import { convertGemm, convertMatMul } from './dense.ts';
import { convertConcat, convertFlatten, convertPad, convertPassThrough, convertReshape, convertResize } from './layout.ts';
import { convertBatchNormalization } from './normalization.ts';
import { convertGlobalPool, convertPool } from './pool.ts';

export const CONVERTERS: Readonly<Record<string, Converter>> = {
  Conv: convertConv,
  ConvTranspose: convertConvTranspose,
  BatchNormalization: convertBatchNormalization,
  Relu: convertRelu,
  Clip: convertClip,
  LeakyRelu: convertLeakyRelu,
  PRelu: convertPRelu,
  Elu: convertElu,
  Sigmoid: convertSigmoid,
  Tanh: convertTanh,
  HardSigmoid: convertHardSigmoid,
  HardSwish: convertHardSwish,
  Softmax: convertSoftmax,
  Add: convertArithmetic,
  Sub: convertArithmetic,
  Mul: convertArithmetic,
  Div: convertArithmetic,
  Concat: convertConcat,
  MaxPool: convertPool,
  AveragePool: convertPool,
  GlobalAveragePool: convertGlobalPool,
  GlobalMaxPool: convertGlobalPool,
  Flatten: convertFlatten,
  Reshape: convertReshape,
  Gemm: convertGemm,
  MatMul: convertMatMul,
  Dropout: convertPassThrough,
  Identity: convertPassThrough,
  Pad: convertPad,
  Resize: convertResize,
  Upsample: convertResize,
};

export const SUPPORTED_OPS: readonly string[] = Object.keys(CONVERTERS).sort();

/**
 * ONNX explicit pads against tfjs' 'same' / 'valid'. TF 'same' pads floor(total/2) before and the
 * rest after; PyTorch pads symmetrically, so e.g. a 3x3 stride-2 conv with padding 1 on an even
 * size pads 1/1 where 'same' pads 0/1: such pads become a padding layer plus 'valid'.
 */

/** TF 'same' padding [before, after] along one axis. */
export function samePadding(size: number, kernel: number, stride: number, dilation: number): [number, number] {
  const effective = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** ONNX `pads` [h_begin, w_begin, h_end, w_end] as [[top, bottom], [left, right]]. */
export type Pads2D = [[number, number], [number, number]];

export function padsFromOnnx(pads: readonly number[]): Pads2D {
  return [
    [pads[0], pads[2]],
    [pads[1], pads[3]],
  ];
}

export function padsToOnnx([[top, bottom], [left, right]]: Pads2D): number[] {
  return [top, left, bottom, right];
}

export function isZero(pads: Pads2D): boolean {
  return pads[0][0] === 0 && pads[0][1] === 0 && pads[1][0] === 0 && pads[1][1] === 0;
}

export function samePads2D(size: readonly [number, number], kernel: readonly number[], strides: readonly number[], dilations: readonly number[]): Pads2D {
  return [samePadding(size[0], kernel[0], strides[0], dilations[0]), samePadding(size[1], kernel[1], strides[1], dilations[1])];
}

export function equalPads(a: Pads2D, b: Pads2D): boolean {
  return a[0][0] === b[0][0] && a[0][1] === b[0][1] && a[1][0] === b[1][0] && a[1][1] === b[1][1];
}

/**
 * The explicit pads a node asks for, from `pads` or `auto_pad` (SAME_UPPER is TF 'same'; SAME_LOWER
 * puts the odd pixel first). Throws for an unknown auto_pad.
 */
export function nodePads(
  autoPad: string,
  pads: readonly number[] | undefined,
  size: readonly [number, number],
  kernel: readonly number[],
  strides: readonly number[],
  dilations: readonly number[],
): Pads2D {
  switch (autoPad) {
    case 'NOTSET':
    case '':
      if (pads !== undefined && pads.length !== 4) throw new Error(`pads has ${pads.length} values, a 2-D op needs 4`);
      return padsFromOnnx(pads ?? [0, 0, 0, 0]);
    case 'VALID':
      return [
        [0, 0],
        [0, 0],
      ];
    case 'SAME_UPPER':
      return samePads2D(size, kernel, strides, dilations);
    case 'SAME_LOWER': {
      const [[t, b], [l, r]] = samePads2D(size, kernel, strides, dilations);
      return [
        [b, t],
        [r, l],
      ];
    }
    default:
      throw new Error(`auto_pad '${autoPad}' is not an ONNX auto_pad value`);
  }
}

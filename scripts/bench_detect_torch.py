"""PyTorch side of scripts/bench-detect.sh: what `yolo3 detect` does, in plain PyTorch.

Per batch: decode the image files (Pillow), keras-yolo3's letterbox (bicubic resize of
int(w*scale) x int(h*scale), pasted centred on a grey 128 canvas), [0,1] CHW, forward of the
darknet net in eval mode under no_grad, then keras' yolo_eval (sigmoid/exp decode, letterbox
correction, score = objectness * class, per-class greedy NMS, max boxes per class). Files are
not written (the Rust side runs with --no-images for the comparison).

The network is the twin in crates/yolo3-model/benches/torch_infer.py, with weights read from
the same darknet .weights file as the Rust side.

Modes:
  images DIR N SIZE            write N synthetic SIZExSIZE images (half PNG, half JPEG)
  random-weights CFG OUT SEED  write random darknet weights for CFG (BN near identity, the conv
                               before each shortcut scaled by 0.2 so activations stay bounded)
  detect CFG WEIGHTS DIR INPUT BATCH SCORE IOU MAX
                               run; prints `RESULT <images> <seconds> <images/s> <boxes>`
"""

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "yolo3-model", "benches"))
from torch_infer import Darknet  # noqa: E402
from PIL import Image  # noqa: E402


def make_images(out_dir, n, size):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        base = rng.uniform(40, 200, size=3)
        img = np.stack([base[c] + 50 * np.sin(6 * xx * (c + 1) + 4 * yy) for c in range(3)], -1)
        for _ in range(rng.integers(2, 6)):
            w, h = rng.integers(size // 10, size // 3, size=2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            colour = rng.uniform(0, 255, size=3)
            if rng.random() < 0.5:
                img[y:y + h, x:x + w] = colour
            else:
                mask = ((xx * size - x - w / 2) / (w / 2)) ** 2 + ((yy * size - y - h / 2) / (h / 2)) ** 2 <= 1
                img[mask] = colour
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        ext = "png" if i % 2 == 0 else "jpg"
        Image.fromarray(img).save(os.path.join(out_dir, f"{i:06}.{ext}"))


def convs(net):
    """(index, Sequential) of every conv layer, in cfg order."""
    return [(i, m) for i, (d, m) in enumerate(zip(net.defs, net.mods)) if d["type"] == "convolutional"]


def write_random_weights(cfg, out, seed):
    net = Darknet(cfg)
    rng = np.random.default_rng(seed)
    before_shortcut = {i - 1 for i, d in enumerate(net.defs) if d["type"] == "shortcut"}
    with open(out, "wb") as f:
        np.array([0, 2, 0], dtype="<i4").tofile(f)
        np.array([0], dtype="<u8").tofile(f)
        for i, seq in convs(net):
            conv = seq[0]
            n, c, k, _ = conv.weight.shape
            w = rng.normal(0, np.sqrt(2.0 / (c * k * k)), size=(n, c, k, k))
            if i in before_shortcut:
                w *= 0.2
            if len(seq) > 1 and isinstance(seq[1], torch.nn.BatchNorm2d):
                parts = [rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.uniform(0.5, 2, n)]
            else:
                parts = [rng.normal(0, 0.1, n)]
            for p in parts + [w.ravel()]:
                np.asarray(p, dtype="<f4").tofile(f)


def load_weights(net, path):
    data = np.fromfile(path, dtype="<u1")
    major, minor = np.frombuffer(data[:8], "<i4")
    pos = 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16
    floats = np.frombuffer(data[pos:].tobytes(), "<f4")
    at = 0

    def take(t):
        nonlocal at
        n = t.numel()
        t.copy_(torch.from_numpy(floats[at:at + n].copy()).view_as(t))
        at += n

    with torch.no_grad():
        for _, seq in convs(net):
            conv = seq[0]
            bn = seq[1] if len(seq) > 1 and isinstance(seq[1], torch.nn.BatchNorm2d) else None
            if bn is not None:
                for t in (bn.bias, bn.weight, bn.running_mean, bn.running_var):
                    take(t)
            else:
                take(conv.bias)
            take(conv.weight)
    assert at == floats.size, f"{path}: {floats.size - at} floats left over"


def yolo_heads(net):
    """(anchors [(w, h)], mask) of each [yolo] layer, in cfg order (coarsest first)."""
    out = []
    for d in net.defs:
        if d["type"] == "yolo":
            a = [float(v) for v in d["anchors"].split(",") if v]
            anchors = list(zip(a[0::2], a[1::2]))
            mask = [int(v) for v in d["mask"].split(",")]
            out.append(([anchors[m] for m in mask], int(d["classes"])))
    return out


def letterbox(img, side):
    iw, ih = img.size
    scale = min(side / iw, side / ih)
    nw, nh = int(iw * scale), int(ih * scale)
    resized = img.resize((nw, nh), Image.BICUBIC) if (nw, nh) != (iw, ih) else img
    canvas = Image.new("RGB", (side, side), (128, 128, 128))
    canvas.paste(resized, ((side - nw) // 2, (side - nh) // 2))
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).permute(2, 0, 1)


def nms(boxes, scores, iou_threshold, max_boxes):
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, keep = boxes[order], []
    alive = torch.ones(len(order), dtype=torch.bool)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(order)):
        if len(keep) >= max_boxes:
            break
        if not alive[i]:
            continue
        keep.append(order[i].item())
        lt = torch.maximum(boxes[i, :2], boxes[i + 1:, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[i + 1:, 2:])
        inter = (rb - lt).clamp(min=0).prod(1)
        iou = inter / (areas[i] + areas[i + 1:] - inter)
        alive[i + 1:] &= iou <= iou_threshold
    return keep


def yolo_eval(outputs, heads, sizes, side, score_threshold, iou_threshold, max_boxes):
    """keras-yolo3's yolo_eval on a batch: per image a list of (box, score, class)."""
    results = []
    for b, (ih, iw) in enumerate(sizes):
        scale = min(side / ih, side / iw)
        new = torch.tensor([round(ih * scale), round(iw * scale)], dtype=torch.float32)
        offset, factor = (side - new) / 2 / side, side / new
        all_boxes, all_scores = [], []
        for out, (anchors, classes) in zip(outputs, heads):
            _, _, gh, gw = out.shape
            p = out[b].view(len(anchors), 5 + classes, gh, gw).permute(2, 3, 0, 1)
            gy, gx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
            x = (torch.sigmoid(p[..., 0]) + gx[..., None]) / gw
            y = (torch.sigmoid(p[..., 1]) + gy[..., None]) / gh
            a = torch.tensor(anchors)
            w = torch.exp(p[..., 2]) * a[:, 0] / side
            h = torch.exp(p[..., 3]) * a[:, 1] / side
            y, x = (y - offset[0]) * factor[0], (x - offset[1]) * factor[1]
            h, w = h * factor[0], w * factor[1]
            box = torch.stack([(x - w / 2) * iw, (y - h / 2) * ih, (x + w / 2) * iw, (y + h / 2) * ih], -1)
            score = torch.sigmoid(p[..., 4:5]) * torch.sigmoid(p[..., 5:])
            all_boxes.append(box.reshape(-1, 4))
            all_scores.append(score.reshape(-1, classes))
        boxes, scores = torch.cat(all_boxes), torch.cat(all_scores)
        found = []
        for c in range(scores.shape[1]):
            sel = scores[:, c] >= score_threshold
            if sel.any():
                cb, cs = boxes[sel], scores[sel, c]
                found += [(cb[k], cs[k].item(), c) for k in nms(cb, cs, iou_threshold, max_boxes)]
        results.append(found)
    return results


def detect(cfg, weights, folder, side, batch, score_threshold, iou_threshold, max_boxes):
    torch.set_num_threads(int(os.environ.get("YOLO3_BENCH_THREADS", "2")))
    net = Darknet(cfg).eval()
    load_weights(net, weights)
    heads = yolo_heads(net)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".png", ".jpg", ".jpeg")))
    boxes = 0
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(files), batch):
            images = [Image.open(f).convert("RGB") for f in files[s:s + batch]]
            xs = torch.stack([letterbox(im, side) for im in images])
            outputs = net(xs)
            dets = yolo_eval(outputs, heads, [(im.height, im.width) for im in images], side, score_threshold, iou_threshold, max_boxes)
            boxes += sum(len(d) for d in dets)
    seconds = time.perf_counter() - start
    print(f"RESULT {len(files)} {seconds:.3f} {len(files) / seconds:.2f} {boxes}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "images":
        make_images(args[0], int(args[1]), int(args[2]))
    elif mode == "random-weights":
        write_random_weights(args[0], args[1], int(args[2]))
    elif mode == "detect":
        cfg, weights, folder = args[:3]
        side, batch = int(args[3]), int(args[4])
        detect(cfg, weights, folder, side, batch, float(args[5]), float(args[6]), int(args[7]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

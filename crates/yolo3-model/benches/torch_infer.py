"""PyTorch twin of benches/infer.rs: the same darknet nets, built from the same cfg files.

Run with ~/.cache/yolo3/venv/bin/python. Prints `RESULT <net> <batch> <median ms> <iters> <min ms>`
lines like the Rust bench. Layers: Conv2d (no bias with BN) + BatchNorm2d (eval) +
LeakyReLU(0.1); size-2 stride-1 maxpool padded right/bottom with -inf; nearest upsample;
route = cat; shortcut = add. Random init, 2 threads, torch.no_grad().
"""

import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CFG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "shared", "models", "cfg")
RUNS = [
    ("yolov3-tiny.cfg", "tiny-yolov3", 1, 20),
    ("yolov3-tiny.cfg", "tiny-yolov3", 8, 6),
    ("yolov3.cfg", "yolov3", 1, 5),
    ("yolov3.cfg", "yolov3", 8, 2),
]


def read_cfg(path):
    sections = []
    for raw in open(path):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            sections.append({"type": line[1:-1]})
        else:
            key, value = line.split("=", 1)
            sections[-1][key] = value
    return sections[0], sections[1:]


class MaxPool(nn.Module):
    def __init__(self, size, stride, padding):
        super().__init__()
        self.size, self.stride, self.before = size, stride, padding // 2
        self.padding = padding

    def forward(self, x):
        h, w = x.shape[2:]

        def after(n):
            out = (n + self.padding - self.size) // self.stride + 1
            return max(0, (out - 1) * self.stride + self.size - self.before - n)

        ah, aw = after(h), after(w)
        if ah == aw == self.before and 2 * self.before <= self.size:
            return F.max_pool2d(x, self.size, self.stride, self.before)
        x = F.pad(x, (self.before, aw, self.before, ah), value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Darknet(nn.Module):
    def __init__(self, path):
        super().__init__()
        net, self.defs = read_cfg(path)
        channels = [int(net["channels"])]
        self.mods = nn.ModuleList()
        out_c = []
        for i, d in enumerate(self.defs):
            c_in = out_c[-1] if out_c else channels[0]
            t = d["type"]
            if t == "convolutional":
                f, k, s = int(d["filters"]), int(d.get("size", 1)), int(d.get("stride", 1))
                p = k // 2 if int(d.get("pad", 0)) else int(d.get("padding", 0))
                bn = int(d.get("batch_normalize", 0))
                layers = [nn.Conv2d(c_in, f, k, s, p, bias=not bn)]
                if bn:
                    layers.append(nn.BatchNorm2d(f, eps=1e-6))
                if d.get("activation") == "leaky":
                    layers.append(nn.LeakyReLU(0.1))
                self.mods.append(nn.Sequential(*layers))
                out_c.append(f)
            elif t == "maxpool":
                s = int(d.get("stride", 1))
                k = int(d.get("size", s))
                self.mods.append(MaxPool(k, s, int(d.get("padding", k - 1))))
                out_c.append(c_in)
            elif t == "upsample":
                self.mods.append(nn.Upsample(scale_factor=int(d.get("stride", 2)), mode="nearest"))
                out_c.append(c_in)
            elif t == "route":
                idx = [int(v) if int(v) >= 0 else i + int(v) for v in d["layers"].split(",") if v]
                d["_idx"] = idx
                self.mods.append(nn.Identity())
                out_c.append(sum(out_c[j] for j in idx))
            elif t == "shortcut":
                v = int(d["from"])
                d["_from"] = v if v >= 0 else i + v
                self.mods.append(nn.Identity())
                out_c.append(c_in)
            elif t == "yolo":
                self.mods.append(nn.Identity())
                out_c.append(c_in)
            else:
                raise ValueError(t)

    def forward(self, x):
        outs, heads = [], []
        for d, m in zip(self.defs, self.mods):
            t = d["type"]
            if t == "route":
                idx = d["_idx"]
                x = outs[idx[0]] if len(idx) == 1 else torch.cat([outs[j] for j in idx], 1)
            elif t == "shortcut":
                x = x + outs[d["_from"]]
            elif t == "yolo":
                heads.append(x)
            else:
                x = m(x)
            outs.append(x)
        return heads


def main():
    threads = int(os.environ.get("YOLO3_BENCH_THREADS", "2"))
    scale = float(os.environ.get("YOLO3_BENCH_SCALE", "1"))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, threads = {torch.get_num_threads()}")
    only = os.environ.get("YOLO3_BENCH_ONLY")
    for cfg, label, batch, iters in RUNS:
        if only and only != f"{label}:{batch}":
            continue
        net = Darknet(os.path.join(CFG_DIR, cfg)).eval()
        x = torch.rand(batch, 3, 416, 416)
        iters = max(1, round(iters * scale))
        with torch.no_grad():
            net(x)
            times = []
            for _ in range(iters):
                start = time.perf_counter()
                out = net(x)
                del out
                times.append((time.perf_counter() - start) * 1e3)
        print(f"RESULT {label} {batch} {statistics.median(times):.1f} {iters} {min(times):.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

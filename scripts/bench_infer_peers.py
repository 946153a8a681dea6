"""Peer side of scripts/bench-infer-peers.sh: the network forward in ONNX Runtime and OpenCV DNN.

yolo3's forward is compared with PyTorch elsewhere (bench_detect_torch.py, benches/torch_infer.py);
this puts it next to two engines built for CPU inference, on the same darknet weights and the
same input. Only the forward is timed: the images (first BATCH files of the folder, sorted) are
decoded and letterboxed once beforehand with keras-yolo3's letterbox (bench_detect_torch.letterbox:
bicubic resize keeping the aspect ratio, grey 128 canvas, RGB, /255, NCHW float32). No decode of
the heads, no NMS. Warm-up runs (2 by default) then ITERS timed runs; the median counts.

  ort ONNX DIR SIDE BATCH THREADS ITERS
      InferenceSession, ORT_ENABLE_ALL, CPUExecutionProvider, THREADS intra-op, 1 inter-op.
  opencv CFG WEIGHTS DIR SIDE BATCH THREADS ITERS
      cv2.dnn.readNetFromDarknet, backend OpenCV on the CPU, cv2.setNumThreads(THREADS),
      forward of every unconnected output (the [yolo] layers, which OpenCV also decodes: sigmoid,
      exp, anchors; cheap next to the convolutions). The blob's size wins over the cfg's [net]
      width/height/batch (yolov3.cfg's 608 and 64 are ignored; anchors are scaled by the blob).
  check ONNX CFG WEIGHTS DIR SIDE BATCH
      max |ORT - OpenCV| over the raw head tensors (the convs that feed the [yolo] layers): the
      ONNX graph (`yolo3 export --format onnx`) against OpenCV's own darknet importer.

Timing modes print `RESULT <engine> <batch> <median ms per batch> <images/s at the median> <iters>`.
Run with the venv's python and PYTHONPATH holding the bench deps (onnxruntime, opencv-python-
headless, pillow; see bench_python_deps in scripts/bench-common.sh).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

from bench_detect_torch import Darknet, letterbox  # sibling file; pulls in torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def load_batch(folder, side, batch):
    """The first `batch` images of `folder` (by name), letterboxed: (batch, 3, side, side) float32."""
    from PIL import Image

    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if len(files) < batch:
        sys.exit(f"{folder}: {len(files)} images, batch {batch} needs more")
    chw = [letterbox(Image.open(os.path.join(folder, f)).convert("RGB"), side).numpy() for f in files[:batch]]
    return np.ascontiguousarray(np.stack(chw), dtype=np.float32)


def median_ms(run, iters, warmup):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def report(engine, batch, ms, iters):
    print(f"RESULT {engine} {batch} {ms:.2f} {batch * 1e3 / ms:.2f} {iters}", flush=True)


def ort_session(onnx_path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])


def ort_forward(session, x):
    """The session's outputs (raw heads, in graph order) for the NCHW batch `x`."""
    return session.run(None, {session.get_inputs()[0].name: x})


def opencv_net(cfg, weights, threads):
    import cv2

    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def opencv_forward(net, x, names=None):
    net.setInput(x)
    return net.forward(names or net.getUnconnectedOutLayersNames())


def time_ort(args):
    session = ort_session(args.onnx, args.threads)
    x = load_batch(args.images, args.side, args.batch)
    ms = median_ms(lambda: ort_forward(session, x), args.iters, args.warmup)
    report("ort", args.batch, ms, args.iters)


def time_opencv(args):
    net = opencv_net(args.cfg, args.weights, args.threads)
    x = load_batch(args.images, args.side, args.batch)
    ms = median_ms(lambda: opencv_forward(net, x), args.iters, args.warmup)
    report("opencv", args.batch, ms, args.iters)


def head_layers(cfg):
    """Index of the layer feeding each [yolo] layer, in cfg order (the ONNX outputs' order)."""
    return [i - 1 for i, d in enumerate(Darknet(cfg).defs) if d["type"] == "yolo"]


def check(args):
    """Raw heads of ORT (ONNX outputs) against OpenCV (outputs of the convs before [yolo])."""
    x = load_batch(args.images, args.side, args.batch)
    theirs = ort_forward(ort_session(args.onnx, 2), x)
    names = [f"conv_{i}" for i in head_layers(args.cfg)]
    net = opencv_net(args.cfg, args.weights, 2)
    ours = opencv_forward(net, x, names)
    decoded = opencv_forward(net, x)
    worst = 0.0
    for name, a, b in zip(names, theirs, ours):
        diff = float(np.abs(a - b).max())
        worst = max(worst, diff)
        print(f"CHECK {name} {'x'.join(map(str, a.shape))} max|ort|={np.abs(a).max():.3f} max|ort-opencv|={diff:.2e}")
    print(f"CHECK opencv [yolo] outputs: {', '.join('x'.join(map(str, d.shape)) for d in decoded)}")
    if worst > args.tol:
        sys.exit(f"ORT and OpenCV differ by {worst:.2e} > {args.tol}")


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = p.add_subparsers(dest="mode", required=True)

    def timing(name, fn, help, *first):
        s = sub.add_parser(name, help=help)
        for arg in first + ("images",):
            s.add_argument(arg)
        for arg in ("side", "batch", "threads", "iters"):
            s.add_argument(arg, type=int)
        s.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
        s.set_defaults(run=fn)

    timing("ort", time_ort, "time ONNX Runtime on an ONNX graph", "onnx")
    timing("opencv", time_opencv, "time OpenCV DNN on a darknet cfg + weights", "cfg", "weights")
    s = sub.add_parser("check", help="max abs difference of the raw heads, ORT vs OpenCV")
    for arg in ("onnx", "cfg", "weights", "images"):
        s.add_argument(arg)
    s.add_argument("side", type=int)
    s.add_argument("batch", type=int)
    s.add_argument("--tol", type=float, default=1e-3, help="fail above this (default 1e-3)")
    s.set_defaults(run=check)
    return p


def main():
    args = parser().parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

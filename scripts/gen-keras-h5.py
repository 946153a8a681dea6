#!/usr/bin/env python3
"""Writes a darknet cfg + .weights pair as the Keras HDF5 file keras-yolo3 would have.

Test fixtures for `yolo3 convert keras` and every command that accepts `.h5` weights, made
without TensorFlow: the file holds what Keras 2 (or tf.keras) writes for the model that
keras-yolo3's `yolo_body` / `tiny_yolo_body` (and its `convert.py`) builds from that cfg.

* Layers are created as keras-yolo3 creates them: per conv `[ZeroPadding2D]` (stride 2),
  `Conv2D` (no bias when batch-normalised), `BatchNormalization`, `LeakyReLU`; `Add`,
  `Concatenate`, `UpSampling2D`, `MaxPooling2D` for the other sections. Names count per layer
  class in that order: `conv2d_1, conv2d_2, ...` (Keras 2) or `conv2d, conv2d_1, ...`
  (tf.keras, `--names tf`).
* `layer_names` lists them in `model.layers` order, which Keras sorts by depth from the
  outputs, so the heads come last and the branches interleave: not the creation order.
* Kernels are HWIO (darknet's OIHW transposed), BN weights are gamma, beta, moving_mean,
  moving_variance; weightless layers have an empty `weight_names`.
* `--layout weights` is `model.save_weights` (groups at the root); `--layout model` is
  `model.save` (the same under `model_weights`, with `model_config` at the root).
* Keras normalises with `(x - mean)/sqrt(var + 1e-3)`, darknet with
  `(x - mean)/(sqrt(var) + 1e-6)`: the moving variance written is
  `(sqrt(var) + 1e-6)^2 - 1e-3`, so that the Keras model computes what the darknet one does.
  `--variance copy` writes darknet's variance unchanged instead, as keras-yolo3's
  `convert.py` does.

Usage: gen-keras-h5.py --cfg C --weights W --out O.h5 [--names keras2|tf]
       [--layout weights|model] [--variance exact|copy]
Needs numpy; installs h5py into the running interpreter's environment when it is missing.
"""

import argparse
import json
import subprocess
import sys

import numpy as np

try:
    import h5py
except ImportError:  # the tests run this with the project's venv, which setup may predate
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", "h5py"])
    import h5py

KERAS_EPS = 1e-3
DARKNET_EPS = 1e-6


def read_cfg(path):
    """The cfg's sections as (name, {key: value}), darknet's whitespace and comment rules."""
    sections = []
    for raw in open(path, encoding="utf-8"):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
        else:
            key, value = line.split("=", 1)
            sections[-1][1][key] = value
    return sections


class Model:
    """The Keras layer graph: names in creation order, inputs of each layer."""

    def __init__(self, zero_based):
        self.zero_based = zero_based
        self.layers = []  # dicts: name, inputs (layer ids), weights [(short name, array)]
        self.counts = {}

    def add(self, kind, inputs, weights=()):
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        if kind == "input" or not self.zero_based:
            n += 1
        name = kind if n == 0 else f"{kind}_{n}"
        self.layers.append({"name": name, "inputs": list(inputs), "weights": list(weights)})
        return len(self.layers) - 1

    def keras_order(self):
        """`model.layers` order: by depth from the outputs (deepest first), then creation."""
        depth = [0] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            for j in self.layers[i]["inputs"]:
                depth[j] = max(depth[j], depth[i] + 1)
        return sorted(range(len(self.layers)), key=lambda i: (-depth[i], i))


def build(cfg_path, weights_path, zero_based, variance):
    sections = read_cfg(cfg_path)
    data = np.fromfile(weights_path, dtype="<i4", count=3)
    major, minor = int(data[0]), int(data[1])
    offset = 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16
    floats = np.fromfile(weights_path, dtype="<f4", offset=offset)
    pos = 0

    def take(n):
        nonlocal pos
        out = floats[pos:pos + n]
        if out.size != n:
            raise SystemExit(f"{weights_path}: ends inside a conv")
        pos += n
        return out

    model = Model(zero_based)
    prev = model.add("input", [])
    outs = []  # keras layer id of each darknet layer's output
    channels = [int(sections[0][1].get("channels", 3))]
    for name, opts in sections[1:]:
        if name == "convolutional":
            filters, size = int(opts["filters"]), int(opts.get("size", 1))
            stride = int(opts.get("stride", 1))
            bn = opts.get("batch_normalize", "0") == "1"
            cin = channels[-1]
            bias = take(filters)
            if bn:
                gamma, mean, var = take(filters), take(filters), take(filters)
            kernel = take(filters * cin * size * size).reshape(filters, cin, size, size)
            hwio = np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))
            if stride > 1:
                prev = model.add("zero_padding2d", [prev])
            conv_weights = [("kernel", hwio)] if bn else [("kernel", hwio), ("bias", bias)]
            prev = model.add("conv2d", [prev], conv_weights)
            if bn:
                if variance == "exact":
                    std = np.sqrt(var.astype(np.float64)) + DARKNET_EPS
                    keras_var = (std * std - KERAS_EPS).astype(np.float32)
                else:
                    keras_var = var
                bn_weights = [("gamma", gamma), ("beta", bias), ("moving_mean", mean),
                              ("moving_variance", keras_var)]
                prev = model.add("batch_normalization", [prev], bn_weights)
            if opts.get("activation", "logistic") == "leaky":
                prev = model.add("leaky_re_lu", [prev])
            channels.append(filters)
        elif name == "route":
            ids = [int(v) for v in opts["layers"].split(",")]
            ids = [len(outs) + i if i < 0 else i for i in ids]
            if len(ids) > 1:
                prev = model.add("concatenate", [outs[i] for i in ids])
            else:
                prev = outs[ids[0]]
            channels.append(sum(channels[i + 1] for i in ids))
        elif name == "maxpool":
            prev = model.add("max_pooling2d", [prev])
            channels.append(channels[-1])
        elif name == "shortcut":
            prev = model.add("add", [outs[len(outs) + int(opts["from"])], prev])
            channels.append(channels[-1])
        elif name == "upsample":
            prev = model.add("up_sampling2d", [prev])
            channels.append(channels[-1])
        elif name == "yolo":
            channels.append(channels[-1])
        else:
            raise SystemExit(f"{cfg_path}: unsupported section [{name}]")
        outs.append(prev)
    if pos != floats.size:
        raise SystemExit(f"{weights_path}: {floats.size - pos} floats left after the last conv")
    return model


def write_weights(group, model, order):
    """`save_weights_to_hdf5_group` of Keras 2.1-2.3 / tf.keras 2.x."""
    # np.asarray as Keras' save_attributes_to_hdf5_group: fixed-length byte strings, and an
    # empty float array for a layer without weights.
    group.attrs["layer_names"] = np.asarray([model.layers[i]["name"].encode("utf8") for i in order])
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.1.5"
    for i in order:
        layer = model.layers[i]
        g = group.create_group(layer["name"])
        names = [f"{layer['name']}/{short}:0".encode("utf8") for short, _ in layer["weights"]]
        g.attrs["weight_names"] = np.asarray(names)
        for name, (_, value) in zip(names, layer["weights"]):
            g.create_dataset(name.decode("utf8"), data=np.asarray(value, dtype=np.float32))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--names", choices=["keras2", "tf"], default="keras2")
    parser.add_argument("--layout", choices=["weights", "model"], default="weights")
    parser.add_argument("--variance", choices=["exact", "copy"], default="exact")
    args = parser.parse_args()
    model = build(args.cfg, args.weights, args.names == "tf", args.variance)
    order = model.keras_order()
    with h5py.File(args.out, "w") as f:
        if args.layout == "model":
            f.attrs["keras_version"] = b"2.1.5"
            f.attrs["backend"] = b"tensorflow"
            config = {"class_name": "Model", "config": {"name": "model_1"}}
            f.attrs["model_config"] = json.dumps(config).encode("utf8")
            write_weights(f.create_group("model_weights"), model, order)
        else:
            write_weights(f, model, order)


if __name__ == "__main__":
    main()

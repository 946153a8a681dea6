"""Runs an ONNX file exported by yolo3 in ONNX Runtime on a shared model case and compares the
heads with the case's float64 darknet reference.

    onnx_case_check.py MODEL.onnx CASE.safetensors

The case's `input` (N x C x H x W float32) goes in as `images`; each output `head<k>` must
match `ref64_out_<k>` within the tolerance of the model tests, 1e-4 + 2e-5 * |ref|. Prints one
line per head (largest difference, share of the budget used) and exits 1 if any head is
outside. The safetensors file is read here with numpy (8-byte header length, JSON header,
little-endian data), so the check needs only onnxruntime and numpy, which scripts/setup.sh
installs into the project's venv. Single-threaded, all graph optimisations on.
"""

import json
import struct
import sys

import numpy as np
import onnxruntime as ort

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in DTYPES:
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors


def main():
    model, case = sys.argv[1], sys.argv[2]
    tensors = read_safetensors(case)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(names, {"images": tensors["input"].astype(np.float32)})
    failed = False
    for k, (name, out) in enumerate(zip(names, outputs)):
        ref = tensors[f"ref64_out_{k}"].astype(np.float64)
        if out.shape != ref.shape:
            print(f"{name}: shape {out.shape}, the reference has {ref.shape}")
            failed = True
            continue
        diff = np.abs(out.astype(np.float64) - ref)
        ratio = float(np.max(diff / (1e-4 + 2e-5 * np.abs(ref))))
        print(f"{name}: max |d| = {diff.max():.3e}, {100 * ratio:.0f}% of the budget")
        failed |= not ratio <= 1.0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

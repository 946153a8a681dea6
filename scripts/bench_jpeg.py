"""Python side of scripts/bench-jpeg.sh and scripts/bench-cache.sh: photo-like JPEG files, and
their decode by the libjpeg-turbo that Pillow and OpenCV bundle.

The files stand in for camera photos, which the benchmark cannot download: several octaves of
smooth coloured noise (sky, walls, foliage at a distance), a few dozen sharp-edged textured
objects, and sensor noise, saved at quality 90 with 4:2:0 chroma subsampling as phone cameras
and most photo tools do. Entropy decoding time follows the amount of detail, so plain gradients
(as in the synthetic training set) would flatter every decoder.

Modes:
  photos DIR N WIDTH HEIGHT        write N JPEGs
  dataset DIR N WIDTH HEIGHT       the same, plus a keras-yolo3 train.txt (the objects' boxes,
                                   4 classes) and classes.txt
  decode DIR REPEATS               decode every JPEG of DIR to RGB with Pillow and with
                                   cv2.imdecode, REPEATS passes each; prints per decoder
                                   `RESULT <decoder> <images> <median ms per image>`
"""

import os
import statistics
import sys
import time

import numpy as np


def octave_noise(rng, height, width, channels):
    """Smooth noise: random grids of growing resolution, bilinearly upsampled and summed."""
    out = np.zeros((height, width, channels), np.float32)
    for level, amplitude in ((4, 70.0), (16, 35.0), (64, 18.0), (256, 9.0)):
        gh, gw = max(2, level * height // max(height, width)), max(2, level * width // max(height, width))
        grid = rng.normal(0, amplitude, (gh, gw, channels)).astype(np.float32)
        ys = np.linspace(0, gh - 1, height, dtype=np.float32)
        xs = np.linspace(0, gw - 1, width, dtype=np.float32)
        y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
        y1, x1 = np.minimum(y0 + 1, gh - 1), np.minimum(x0 + 1, gw - 1)
        fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
        top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
        bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
        out += top * (1 - fy) + bottom * fy
    return out


def photo(rng, width, height):
    """One photo-like image and its objects' boxes `(x0, y0, x1, y1, class)`."""
    img = 110.0 + octave_noise(rng, height, width, 3)
    boxes = []
    for _ in range(int(rng.integers(3, 12))):
        w = int(rng.integers(width // 20, width // 4))
        h = int(rng.integers(height // 20, height // 3))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        cls = int(rng.integers(0, 4))
        colour = rng.uniform(20, 235, 3).astype(np.float32)
        texture = octave_noise(rng, h, w, 1) * 0.8
        if cls % 2 == 0:
            img[y:y + h, x:x + w] = colour + texture
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            mask = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2 <= 1
            region = img[y:y + h, x:x + w]
            region[mask] = (colour + texture)[mask]
        boxes.append((x, y, x + w, y + h, cls))
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), boxes


def write_photos(out_dir, n, width, height, annotate):
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        img, boxes = photo(rng, width, height)
        path = os.path.join(out_dir, f"{i:06}.jpg")
        Image.fromarray(img).save(path, quality=90, subsampling="4:2:0")
        lines.append(path + "".join(f" {x0},{y0},{x1},{y1},{c}" for x0, y0, x1, y1, c in boxes))
    if annotate:
        with open(os.path.join(out_dir, "train.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(out_dir, "classes.txt"), "w") as f:
            f.write("box\nellipse\nsquare\ndisc\n")


def decode(directory, repeats):
    import cv2
    from PIL import Image

    cv2.setNumThreads(1)
    files = sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".jpg"))

    def pillow(path):
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))

    def opencv(path):
        data = np.fromfile(path, np.uint8)
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    for name, fn in (("pillow", pillow), ("opencv", opencv)):
        fn(files[0])  # warm-up
        per_pass = []
        for _ in range(repeats):
            start = time.perf_counter()
            for path in files:
                fn(path)
            per_pass.append((time.perf_counter() - start) * 1000 / len(files))
        print(f"RESULT {name} {len(files)} {statistics.median(per_pass):.3f}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode in ("photos", "dataset"):
        write_photos(args[0], int(args[1]), int(args[2]), int(args[3]), mode == "dataset")
    elif mode == "decode":
        decode(args[0], int(args[1]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

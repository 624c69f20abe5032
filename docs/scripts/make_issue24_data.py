"""Two labelled image folders for issue 24 (MIC-GANs' mode count), read by selfcond's folder loader
(one sub-folder per class, 28 px grey PNGs):

- imbalanced: MNIST with class shares 30, 20, 13, 9, 7, 6, 5, 4, 3, 3 % (digits 0-9 in that order),
  as many images as the scarcest class allows at its share;
- mixed: 12 classes from two sources, MNIST digits 0-5 and Fashion-MNIST trouser, bag, sneaker,
  dress, sandal and ankle boot, 800 images each.

Usage: python make_issue24_data.py MNIST_DIR FASHION_DIR OUT   (IDX .gz files in both; writes
OUT/imbalanced and OUT/mixed). Seeded: the same files every time.
"""
import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SHARES = [0.30, 0.20, 0.13, 0.09, 0.07, 0.06, 0.05, 0.04, 0.03, 0.03]
FASHION = {1: "trouser", 8: "bag", 7: "sneaker", 3: "dress", 5: "sandal", 9: "ankle-boot"}
PER_CLASS = 800


def idx(folder: str) -> tuple[np.ndarray, np.ndarray]:
    images = np.frombuffer(gzip.open(f"{folder}/train-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(f"{folder}/train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images.reshape(-1, 28, 28), labels


def write(out: Path, classes: dict[str, np.ndarray]) -> None:
    for name, images in classes.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            Image.fromarray(img).save(out / name / f"{i:05d}.png")
    print(out, {name: len(v) for name, v in classes.items()}, sum(map(len, classes.values())), "images")


def main(mnist: str, fashion: str, out: str) -> None:
    rng = np.random.default_rng(0)
    mx, my = idx(mnist)
    fx, fy = idx(fashion)
    by_digit = [rng.permutation(np.flatnonzero(my == d)) for d in range(10)]
    total = int(min(len(by_digit[d]) / s for d, s in enumerate(SHARES)))
    write(Path(out) / "imbalanced",
          {f"digit{d}": mx[by_digit[d][:round(total * s)]] for d, s in enumerate(SHARES)})
    mixed = {f"digit{d}": mx[by_digit[d][:PER_CLASS]] for d in range(6)}
    for label, name in FASHION.items():
        mixed[name] = fx[rng.permutation(np.flatnonzero(fy == label))[:PER_CLASS]]
    write(Path(out) / "mixed", mixed)


if __name__ == "__main__":
    main(*sys.argv[1:4])

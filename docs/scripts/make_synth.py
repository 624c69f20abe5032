"""A synthetic image folder: N Fashion-MNIST images upscaled to 64 px and tinted, as RGB PNGs in
sub-folders of 1,000 (no labels), for the streaming memory figures of issue 22."""
import gzip, json, sys
from pathlib import Path
import numpy as np
from PIL import Image
# Usage: python make_synth.py N OUT [FASHION_DIR]
n, out = int(sys.argv[1]), Path(sys.argv[2])
src = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist"
raw = gzip.open(f"{src}/train-images-idx3-ubyte.gz").read()
imgs = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
rng = np.random.default_rng(0)
out.mkdir(parents=True, exist_ok=True)
for i in range(n):
    g = Image.fromarray(imgs[i % len(imgs)]).resize((64, 64), Image.BICUBIC)
    tint = rng.uniform(0.4, 1.0, 3)
    rgb = (np.asarray(g, np.float32)[..., None] * tint).astype(np.uint8)
    d = out / f"{i // 1000:05d}"
    d.mkdir(exist_ok=True)
    Image.fromarray(rgb).save(d / f"{i:07d}.png")
(out / "dataset.json").write_text(json.dumps({"labels": None}))
print(n, "images in", out)

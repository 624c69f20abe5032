"""Fashion-MNIST upscaled to 128 px RGB PNGs, 500 per class, in class sub-folders."""
import sys
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
from selfcond.config import resolve
from selfcond import data
out = Path(sys.argv[1]); per = int(sys.argv[2])
ds = data.load(resolve(overrides={"data.name": "fashion-mnist"}).data)
labels = ds.labels.cpu()
names = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
for c in range(10):
    idx = torch.nonzero(labels == c).flatten()[:per]
    x = ds.images(idx).float()  # [-1, 1]
    x = F.interpolate(x, size=128, mode="bicubic", align_corners=False).clamp(-1, 1)
    u8 = ((x + 1) * 127.5).round().to(torch.uint8).numpy()
    d = out / names[c]; d.mkdir(parents=True, exist_ok=True)
    for i, im in zip(idx.tolist(), u8):
        Image.fromarray(np.repeat(im[0][:, :, None], 3, 2)).save(d / f"{i:05d}.png")
print("wrote", out)

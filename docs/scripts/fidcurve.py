"""fid_cls over training of a 128 px run on the upscaled Fashion-MNIST folder: at every checkpoint,
1,000 samples (seeds 0-999, modes from pi) are made grey and area-averaged to 28 px, and their
Frechet distance to 10,000 Fashion-MNIST training images is taken in the features of the
Fashion-MNIST evaluation classifier (the one `fid_cls` uses for fashion-mnist)."""
import json, sys
from pathlib import Path
import torch, torch.nn.functional as F
import selfcond
from selfcond import data
from selfcond.config import resolve
from selfcond.metrics.classifier import for_dataset, predict
from selfcond.metrics.fid import fid_from_features

torch.set_num_threads(1)
run = Path(sys.argv[1])
opts = resolve(overrides={"data.name": "fashion-mnist"}).data
clf, _ = for_dataset(opts, progress=False)
real = data.load(opts)
real_f = predict(clf, real.images(torch.arange(10000)), features=True)
out = []
for ck in sorted(run.glob("checkpoint-*.pt")):
    m = selfcond.load(ck, device="cpu")
    x, _ = m.generate(seeds=list(range(1000)))
    x = F.adaptive_avg_pool2d(x.clamp(-1, 1).mean(1, keepdim=True), 28)
    rec = {"step": m.step, "fid_cls_28": round(fid_from_features(predict(clf, x, features=True), real_f), 2)}
    out.append(rec)
    print(json.dumps(rec), flush=True)
Path(sys.argv[2]).write_text(json.dumps(out, indent=1))

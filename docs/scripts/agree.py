"""Agreement of `assign` on a run's own training images with the run's mode table: python docs/scripts/agree.py RUN."""
import json, sys, time
import torch
import selfcond
run = sys.argv[1]
m = selfcond.load(run, device="cpu")
t = m.trainer
x = t.dataset.images(torch.arange(len(t.dataset)))
t0 = time.perf_counter()
a = m.assign(x)
table = t.partition.table.cpu()
rec = {"run": run, "n": len(table), "agree": float((a.modes == table).float().mean()),
       "outlier_share": float(a.outlier.float().mean()), "seconds": round(time.perf_counter() - t0, 1)}
print(json.dumps(rec))

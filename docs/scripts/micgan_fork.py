"""Issue 24: continue a MIC-GANs run from one of its checkpoints with other method options, and
score it as `selfcond bench clusters` scores a trial (the same record, with the per-round chain).

Usage: python micgan_fork.py CHECKPOINT OUT_DIR RECORD.json KEY=VALUE ...   e.g. merge_from=2 smooth_sweeps=10
(method keys, or SECTION.KEY such as train.snapshot_every=1000; KEY=- drops a key the checkpoint's
config holds and today's selfcond does not know)

Why: a run with merges from round 2 is the run without merges up to round 2's refresh (the merge is
the last thing that refresh does, and it draws nothing from the run's generator when the data hold
no more than method.merge_points images). So a run of the control, forked at a checkpoint taken
before round 2 with merges switched on, is the run with merges, at half the cost. The checkpoint
is copied: the control is left as it is.
"""
import json
import sys
from pathlib import Path

import torch

from selfcond.atomic import atomic_write
from selfcond.bench.clusters import KEYS, record_rounds
from selfcond.train import checkpoint
from selfcond.train.run import plan_resume, resume

src, out, record_path = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
def value(text: str):
    """JSON where it parses (2, true, 0.5), else the text itself (chain)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


sets = {k: value(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])}
state = checkpoint.read(src)
for key, value in sets.items():  # "train.snapshot_every" names its section; a bare key is a method key
    section, name = key.split(".", 1) if "." in key else ("method", key)
    if value == "-":
        del state["config"][section][name]
    else:
        state["config"][section][name] = value
out.mkdir(parents=True, exist_ok=False)
torch.save(state, out / src.name)
atomic_write(out / "latest", src.name + "\n")
trainer = resume(plan_resume(out))
rounds: list[dict] = []
record_rounds(trainer, rounds)
trainer.train(progress=False)
m = trainer.evaluate(10000, metrics=["clusters", "fid_cls"])
record = {"bench": "clusters (forked)", "from": str(src), "set": sets, "k": trainer.cfg.method.k,
          "modes_alive": trainer.partition.summary()["modes_alive"],
          **{key: m.get(key) for key in KEYS}, "rounds": rounds}
atomic_write(record_path, json.dumps(record, indent=1) + "\n")
print(json.dumps({key: record[key] for key in ("k", "modes_alive", *KEYS)}))

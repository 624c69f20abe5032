"""Time spent in torch.distributed collectives per training step (rank 0), for issue 22's throughput."""
import sys, time, atexit, os
import torch.distributed as td
tot = {}
def wrap(name):
    f = getattr(td, name)
    def g(*a, **k):
        t0 = time.perf_counter(); r = f(*a, **k); tot[name] = tot.get(name, [0, 0.0]); tot[name][0] += 1; tot[name][1] += time.perf_counter() - t0; return r
    setattr(td, name, g)
for n in ("all_reduce", "broadcast"):
    wrap(n)
@atexit.register
def rep():
    if os.environ.get("RANK", "0") == "0":
        print("COMM", {k: (v[0], round(v[1], 3)) for k, v in tot.items()}, file=sys.stderr)
from selfcond.cli import main
sys.argv = ["selfcond", *sys.argv[1:]]
main()

#!/bin/bash
# issue 22: CPU throughput of 1 vs 2 ranks, one thread each, the same global batch, digits scgan
# (dcgan 32 px); the median steps/s of the 100-step log intervals after the first.
# Usage: ddp_speed.sh OUT.jsonl REPEATS STEPS [extra selfcond args]
# Run from a working directory; the repository is $SELFCOND_REPO (default: two levels above this script).
REPO=${SELFCOND_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONPATH=$REPO/src OMP_NUM_THREADS=1
PY=${PYTHON:-python3}
OUTF=$1; REP=$2; STEPS=$3; shift 3
ARGS="--data digits --threads 1 --quiet --steps $STEPS --snapshot-every 100000 --set method.recluster_every=100000 --set train.eval_samples=500 $*"

for i in $(seq $REP); do
  rm -rf speed-1 speed-2
  $PY -m selfcond train $ARGS --out speed-1 > /dev/null
  $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m selfcond train $ARGS --out speed-2 > /dev/null
  EXTRA="$*" $PY - <<'PY' >> $OUTF
import json, glob, statistics, os
rec = {"args": os.environ["EXTRA"]}
for n in (1, 2):
    rows = [json.loads(l) for l in open(glob.glob(f"speed-{n}/*/stats.jsonl")[0])]
    rec[f"ranks{n}_steps_per_s"] = statistics.median(r["steps_per_s"] for r in rows[1:])
rec["speedup"] = rec["ranks2_steps_per_s"] / rec["ranks1_steps_per_s"]
print(json.dumps(rec))
PY
done

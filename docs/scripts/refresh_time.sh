#!/bin/bash
# issue 22: the refresh (D's features of 50,000 clustered images, k-means k = 20, labelling of all
# 100,000) of scgan on the synthetic 100,000-image folder at 64 px, 1 vs 2 ranks, one thread each:
# the `start` event's seconds (the first clustering, the same work as every refresh).
# Run in the directory that holds synth/100k (make_synth.py); the repository is $SELFCOND_REPO.
REPO=${SELFCOND_REPO:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONPATH=$REPO/src OMP_NUM_THREADS=1
PY=${PYTHON:-python3}

for mode in ${MODES:-never always}; do
ARGS="--data synth/100k --resolution 64 --k 20 --threads 1 --quiet --steps 2 --snapshot-every 100000 --set method.cluster_samples=50000 --set train.eval_samples=200 --set data.stream=$mode"
for i in 1 2; do
  rm -rf rt-1 rt-2
  $PY -m selfcond train $ARGS --out rt-1 > /dev/null || exit 1
  $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m selfcond train $ARGS --out rt-2 > /dev/null || exit 1
  echo "{\"stream\": \"$mode\", \"ranks1\": \"$(grep -o 'event=start.*' rt-1/*/log.txt)\", \"ranks2\": \"$(grep -o 'event=start.*' rt-2/*/log.txt)\"}" >> refresh-time.jsonl
done
done
cat refresh-time.jsonl

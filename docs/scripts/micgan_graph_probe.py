"""Issue 24 probe (usage: python micgan_graph_probe.py RUN_OR_CHECKPOINT [NEIGHBOURS] [SPACES]): on a MIC-GANs run's
frozen mode table, what would kNN-graph modularity merges (selfcond.cluster.merge) do, in three spaces:
Q's embeddings, the pixels and D's features? For each space: how often a point's neighbours share its
true class, the observed / expected edges between mode pairs with the same majority class ("twins")
and, the largest, between pairs of different classes, and the modes and purity after merging
(resolution gamma = 1, and 2 and 0.5 beside it); then the table smoothed by label propagation (10 sweeps)
and smoothed then merged, as a round does. One JSON line per space; SPACES (comma-separated, default
Q,pixels,D features) picks them."""
import json
import sys

import torch
from sklearn.metrics import normalized_mutual_info_score as nmi

import selfcond
from selfcond.cluster.merge import knn, modularity_merges, propagate, slot_graph
from selfcond.metrics.clusters import contingency

torch.set_num_threads(1)
model = selfcond.load(sys.argv[1], device="cpu")
neighbours = int(sys.argv[2]) if len(sys.argv) > 2 else 10
t = model.trainer
p, ds = t.partition, t.dataset
y, z, K, N = ds.labels.cpu(), p.table.clone(), p.k, len(ds)
idx = torch.arange(N)
wanted = sys.argv[3].split(",") if len(sys.argv) > 3 else ["Q", "pixels", "D features"]
spaces = {"Q": lambda: p.embed(ds).float(),
          "pixels": lambda: torch.cat([ds.images(idx[i:i + 2000], "cpu").flatten(1) for i in range(0, N, 2000)]),
          "D features": lambda: torch.cat([t.D.eval().features(ds.images(idx[i:i + 500], "cpu")).flatten(1)
                                           for i in range(0, N, 500)])}


def score(z):
    ct = contingency(z, y, K, ds.num_classes)
    cnt = torch.bincount(z, minlength=K).double()
    return {"modes": int((cnt > 0).sum()), "k_found": int((cnt / N > 0.01).sum()),
            "purity": round(float(ct.max(1).sum() / N), 4), "nmi": round(float(nmi(y.numpy(), z.numpy())), 4)}


major = contingency(z, y, K, ds.num_classes).argmax(1)
cnt = torch.bincount(z, minlength=K)
print(json.dumps({"run": sys.argv[1], "table": score(z)}))
for name in wanted:
    with torch.no_grad():
        f = spaces[name]()
    nb = knn(f, neighbours)
    W = slot_graph(nb, z, K)
    a = W.sum(1)
    ratio = W * W.sum() / torch.outer(a, a).clamp(min=1)  # > 1: a merge gains modularity
    twins, distinct = [], []
    for i in range(K):
        for j in range(i + 1, K):
            if min(cnt[i], cnt[j]) >= 0.005 * N:
                (twins if major[i] == major[j] else distinct).append(round(float(ratio[i, j]), 2))
    print(json.dumps({"space": name, "neighbours_same_class": round(float((y[nb] == y[:, None]).float().mean()), 4),
                      "twins_obs_over_exp": sorted(twins), "distinct_largest": sorted(distinct)[-5:],
                      **{f"merged_gamma_{g}": score(modularity_merges(W, cnt, g).slot[z]) for g in (1.0, 2.0, 0.5)},
                      "smoothed": score(zs := propagate(nb, z, K, 10)),
                      "smoothed_merged": score(modularity_merges(slot_graph(nb, zs, K), torch.bincount(zs, minlength=K)).slot[zs])}))
    sys.stdout.flush()

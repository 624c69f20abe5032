"""Issue 24 probe (usage: python micgan_embedding_probe.py CHECKPOINT [KMEANS_KS]): how well does a MIC-GANs
checkpoint's Q embedding separate the true classes, and how does its mode table compare with k-means
on the same embedding and on the pixels?

One JSON line: the table's purity / NMI / ARI; the share of each image's 10 nearest neighbours in Q's
embedding that share its class, overall and per class; for each class, the other class its images'
neighbours fall in most, and how often; and, for each k of KMEANS_KS (comma-separated, e.g. 10,19;
none by default), k-means with k clusters on Q's embeddings (5 starts) and on the pixels (3 starts),
random_state 0, scored like the table."""
import json
import sys

import numpy as np
import torch
from sklearn.cluster import KMeans

import selfcond
from selfcond.cluster.merge import knn
from selfcond.metrics.clusters import cluster_scores

torch.set_num_threads(1)
model = selfcond.load(sys.argv[1], device="cpu")
ks = [int(k) for k in sys.argv[2].split(",")] if len(sys.argv) > 2 and sys.argv[2] else []
p, ds = model.trainer.partition, model.trainer.dataset
y, C = ds.labels.cpu(), ds.num_classes
N = len(y)


def score(z: np.ndarray) -> dict:
    return {name: round(v, 4) for name, v in cluster_scores(z, y, int(z.max()) + 1, C).items()}


with torch.no_grad():
    x = p.embed(ds).float()
nb = knn(x, 10)
same = (y[nb] == y[:, None]).float().mean(1)
where = torch.zeros(C, C).index_put_((y[:, None].expand_as(nb).reshape(-1), y[nb].reshape(-1)),
                                     torch.ones(nb.numel()), accumulate=True)
where = where / where.sum(1, keepdim=True)
where.fill_diagonal_(0)
out = {"checkpoint": sys.argv[1], "step": int(model.step),
       "table": score(p.table.cpu().numpy()),
       "neighbours_same_class": round(float(same.mean()), 4),
       "per_class_same": [round(float(same[y == c].mean()), 3) for c in range(C)],
       "per_class_nearest_other": [[int(where[c].argmax()), round(float(where[c].max()), 3)] for c in range(C)]}
if ks:
    idx = torch.arange(N)
    pixels = torch.cat([ds.images(idx[i:i + 2000], "cpu").flatten(1) for i in range(0, N, 2000)]).numpy()
    for k in ks:
        out[f"kmeans_{k}_q"] = score(KMeans(k, n_init=5, random_state=0).fit_predict(x.numpy()))
        out[f"kmeans_{k}_pixels"] = score(KMeans(k, n_init=3, random_state=0).fit_predict(pixels))
print(json.dumps(out))

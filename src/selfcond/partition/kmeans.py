"""`scgan`, Self-Conditioned GAN (Liu et al., CVPR 2020): modes are k-means clusters of D's own
features.

- start: k-means++ on the features of a fixed set of real samples under the randomly initialised D;
- every `recluster_every` steps: features under the current D, k-means warm-started from the means
  of the new features under the previous labels (empty clusters re-seeded), then the new clusters are
  matched to the old ones (Hungarian algorithm on the overlap matrix) so each condition keeps its
  meaning;
- between refreshes, a real sample's mode is its nearest centre in the feature space of the D
  snapshot taken at the last refresh (as the paper's code does), and π is the cluster sizes.
  Indexed datasets are labelled whole at each refresh (a table indexed by dataset index, so a step
  costs no extra forward pass); data sampled fresh (2D) is labelled batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selfcond.cluster.kmeans import assign, centers_from_labels, kmeans
from selfcond.cluster.matching import match_clusters
from selfcond.cluster import sharded
from selfcond.data.base import Batch, IndexedDataset
from selfcond.errors import UserError
from selfcond.options import opt
from selfcond.partition.base import Assignment, ClusteredOptions, MethodSpec, Partition, PartitionContext, register


@dataclass
class SCGANOptions(ClusteredOptions):
    recluster_every: int = opt(5000, min=1, help="steps between re-clusterings")
    kmeans_iters: int = opt(100, min=1, help="most Lloyd iterations per clustering")


@torch.no_grad()
def batched_features(d, x: torch.Tensor) -> torch.Tensor:
    """D's clustering features of x, in D's chunks so memory stays bounded: (n, *shape) -> (n, f)."""
    return torch.cat([d.features(x[i:i + d.chunk]) for i in range(0, x.shape[0], d.chunk)])


class KMeansPartition(Partition):
    assigns = True

    def __init__(self, options: SCGANOptions, device="cpu"):
        super().__init__(options.k, device)
        self.o = options
        self.x_cluster: torch.Tensor | None = None  # the fixed real samples that are clustered (2D)
        self.cluster_index: torch.Tensor | None = None  # or their dataset indices, read chunk by chunk
        self.centers: torch.Tensor | None = None  # (k, f), row j = condition j
        self.cluster_labels: torch.Tensor | None = None  # (cluster_samples,) labels of x_cluster
        self.frozen = None  # D as it was at the last refresh, for labelling real batches

    def setup(self, ctx: PartitionContext) -> None:
        self.generator, self.dataset = ctx.generator, ctx.dataset
        if isinstance(ctx.dataset, IndexedDataset) and self.k > min(len(ctx.dataset), self.o.cluster_samples):
            n = min(len(ctx.dataset), self.o.cluster_samples)
            raise UserError(f"method.k ({self.k}) is more than the {n} images clustered "
                            f"(dataset {ctx.dataset.name!r}): give --k {n} or less")
        self.frozen = ctx.copy_d(None)

    def start(self, ctx: PartitionContext) -> None:
        data = ctx.dataset
        n = self.o.cluster_samples
        if isinstance(data, IndexedDataset):  # a fixed subset of the images (all when fewer)
            n = min(n, len(data))
            idx = torch.randperm(len(data), generator=self.generator, device=self.device)[:n]
            self.cluster_index = idx  # held and checkpointed as indices, not images: 25,000 at 64 px
            # would be 1.2 GB of floats, and a streamed dataset is read chunk by chunk
        else:
            self.x_cluster = data.sample(n, self.generator, self.device)[0]
        self._cluster(ctx, warm=False)

    def due(self, step: int) -> bool:
        return step > 0 and step % self.o.recluster_every == 0

    def refresh(self, ctx: PartitionContext, step: int) -> dict:
        return self._cluster(ctx, warm=True)

    def _cluster(self, ctx: PartitionContext, warm: bool) -> dict:
        ctx.copy_d(self.frozen)
        if sharded.sharded():
            return self._cluster_sharded(warm)
        feats = self._cluster_features()
        if warm:
            init = centers_from_labels(feats, self.cluster_labels, self.k, generator=self.generator)
        else:
            init = "k-means++"
        result = kmeans(feats, self.k, init=init, max_iter=self.o.kmeans_iters, generator=self.generator)
        labels, centers = result.labels, result.centers
        changed = 0.0
        if warm:
            perm = match_clusters(labels, self.cluster_labels, self.k)  # perm[new] = old id
            labels = perm[labels]
            centers = torch.empty_like(centers).index_copy_(0, perm, centers)
            changed = float((labels != self.cluster_labels).float().mean())
        self.centers, self.cluster_labels = centers, labels
        if isinstance(self.dataset, IndexedDataset):
            self.table = self._label_all()
            labels = self.table
        self.counts = torch.bincount(labels, minlength=self.k).to(torch.float64)
        return {"kmeans_iters": result.n_iter, "inertia": result.inertia, "relabelled": changed,
                "modes_alive": int(self.alive.sum())}

    def _cluster_sharded(self, warm: bool) -> dict:
        """The refresh on several ranks (torchrun): each computes the features of its block of the
        clustered samples and labels its block of the dataset; k-means exchanges per-centre sums
        (cluster/sharded.py), the labels are gathered (ints), rank 0 matches, and every rank ends
        with the same centres, labels and table."""
        n = (self.cluster_index if self.cluster_index is not None else self.x_cluster).shape[0]
        part = sharded.block(n)
        feats = self._cluster_features(part)
        if warm:
            init = sharded.centers_from_labels_sharded(feats, self.cluster_labels[part], self.k, self.generator)
        else:
            init = "k-means++"
        result = sharded.kmeans_sharded(feats, self.k, init=init, max_iter=self.o.kmeans_iters,
                                        generator=self.generator)
        labels, centers = sharded.gather_rows(result.labels), result.centers
        changed = 0.0
        if warm:
            perm = sharded.broadcast(match_clusters(labels, self.cluster_labels, self.k))
            labels = perm[labels]
            centers = torch.empty_like(centers).index_copy_(0, perm, centers)
            changed = float((labels != self.cluster_labels).float().mean())
        self.centers, self.cluster_labels = centers, labels
        if isinstance(self.dataset, IndexedDataset):
            self.table = sharded.gather_rows(self._label_all(sharded.block(len(self.dataset))))
            labels = self.table
        self.counts = torch.bincount(labels, minlength=self.k).to(torch.float64)
        return {"kmeans_iters": result.n_iter, "inertia": result.inertia, "relabelled": changed,
                "modes_alive": int(self.alive.sum())}

    @torch.no_grad()
    def _cluster_features(self, part: slice = slice(None)) -> torch.Tensor:
        """D's features of the clustered samples (n, f), or of `part` of them, in D's chunks (the
        same chunks, so the same bits, whether the images are held or read)."""
        if self.cluster_index is None:
            return batched_features(self.frozen, self.x_cluster[part])
        idx, chunk = self.cluster_index[part], self.frozen.chunk
        return torch.cat([self.frozen.features(self.dataset.images(idx[i:i + chunk], self.device))
                          for i in range(0, idx.shape[0], chunk)])

    @torch.no_grad()
    def _label_all(self, part: slice | None = None) -> torch.Tensor:
        """The nearest centre of every image (or of the images in `part`), chunk by chunk."""
        part = slice(0, len(self.dataset)) if part is None else part
        chunk = self.frozen.chunk
        out = []
        for i in range(part.start, part.stop, chunk):
            idx = torch.arange(i, min(i + chunk, part.stop), device=self.device)
            out.append(assign(self.frozen.features(self.dataset.images(idx, self.device)), self.centers)[0])
        return torch.cat(out) if out else torch.empty(0, dtype=torch.int64, device=self.device)

    @torch.no_grad()
    def labels(self, batch: Batch) -> torch.Tensor:
        if self.table is not None and batch.index is not None:
            return self.table[batch.index]
        return assign(self.frozen.features(batch.x), self.centers)[0]

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> Assignment:
        """The nearest centre in the features of the D of the last refresh, as `table` is made."""
        labels, d2 = assign(batched_features(self.frozen, x.to(self.device)), self.centers)
        return Assignment(labels, -d2.double(), None)

    def state_dict(self) -> dict:
        x_cluster = None if self.cluster_index is not None else self.x_cluster
        return {**super().state_dict(), "x_cluster": x_cluster, "cluster_index": self.cluster_index,
                "centers": self.centers, "cluster_labels": self.cluster_labels,
                "frozen": self.frozen.state_dict(), "table": self.table}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.cluster_index = state.get("cluster_index")
        if self.cluster_index is not None:
            self.cluster_index = self.cluster_index.to(self.device)
        else:
            self.x_cluster = state["x_cluster"].to(self.device)
        self.centers = state["centers"].to(self.device)
        self.cluster_labels = state["cluster_labels"].to(self.device)
        self.frozen.load_state_dict(state["frozen"])
        self.table = None if state["table"] is None else state["table"].to(self.device)


register(MethodSpec("scgan", SCGANOptions, lambda o, dataset, device: KMeansPartition(o, device),
                    "Self-Conditioned GAN: modes are k-means clusters of D's features"))

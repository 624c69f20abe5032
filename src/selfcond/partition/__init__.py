"""Partitions by name (DESIGN.md): none, labels, random, kmeans (Self-Conditioned GAN), crp (MIC-GANs)."""

from __future__ import annotations

from selfcond.partition.base import Partition
from selfcond.partition.kmeans import KMeansPartition
from selfcond.partition.simple import LabelPartition, NoPartition, RandomPartition


def make(cfg, dataset, device) -> Partition:
    kind, m = cfg.partition, cfg.method
    if kind == "none":
        return NoPartition(device)
    if kind == "labels":
        return LabelPartition(dataset, device)
    if kind == "random":
        return RandomPartition(m.k, device)
    if kind == "crp":
        from selfcond.partition.crp import CRPPartition

        return CRPPartition(m, device)
    if kind == "kmeans":
        return KMeansPartition(m.k, m.recluster_every, m.cluster_samples, m.kmeans_iters, device)
    raise ValueError(f"unknown partition {kind!r}")


__all__ = ["Partition", "make"]

"""Methods by name, each a partition (partition/base.py has the contract): gan, pacgan, mbd
(none.py), cgan (labels.py), random, scgan (kmeans.py), micgan (crp.py)."""

from selfcond.partition.base import (METHODS, MethodOptions, MethodSpec, ModesOptions, Partition,
                                     PartitionContext, register)

__all__ = ["METHODS", "MethodOptions", "MethodSpec", "ModesOptions", "Partition", "PartitionContext", "register"]

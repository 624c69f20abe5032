import math

import numpy as np

from selfcond.metrics.clusters import cluster_scores, contingency


def test_perfect_clustering_up_to_renaming():
    labels = np.repeat(np.arange(4), 25)
    modes = (labels + 1) % 4
    s = cluster_scores(modes, labels, 4, 4)
    assert s == {"purity": 1.0, "nmi": 1.0, "ari": 1.0}


def test_purity_by_hand():
    # mode 0 holds classes (0,0,0,1), mode 1 holds (1,1,2,2): purity = (3 + 2) / 8
    modes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    assert math.isclose(cluster_scores(modes, labels, 2, 3)["purity"], 5 / 8)
    assert contingency(modes, labels, 2, 3).tolist() == [[3, 1, 0], [0, 2, 2]]


def test_top_modes_and_k_found():
    modes = np.array([0] * 50 + [1] * 45 + [2] * 5)  # mode 2 is small and mixed
    labels = np.array([0] * 50 + [1] * 45 + [0, 1, 0, 1, 0])
    pi = np.array([0.5, 0.45, 0.005, 0.045])
    s = cluster_scores(modes, labels, 4, 2, pi=pi, top=2)
    assert s["k_found"] == 3 and s["purity_top"] == 1.0 and s["purity"] == 0.98

"""cluster/merge.py: kNN graph, slot graph, greedy modularity merges; on problems whose number of
clusters is known."""

import pytest
import torch

from selfcond.cluster.kmeans import kmeans
from selfcond.cluster.merge import knn, mend_table, merge_slots, modularity_merges, propagate, slot_graph, vote


def blobs(shares, n=4000, d=10, sep=6.0, seed=0):
    """n points from Gaussian blobs (unit variance) with these shares; means ~ N(0, sep^2 / 2)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(torch.tensor(shares, dtype=torch.float64), n, replacement=True, generator=g)
    means = torch.randn(len(shares), d, generator=g) * sep / 2**0.5
    return means[y] + torch.randn(n, d, generator=g), y


def purity(z, y):
    ct = torch.zeros(int(z.max()) + 1, int(y.max()) + 1)
    ct.index_put_((z, y), torch.ones(len(z)), accumulate=True)
    return float(ct.max(1).values.sum() / len(z))


def test_knn_is_the_exact_nearest_neighbours():
    x = torch.randn(700, 5, generator=torch.Generator().manual_seed(1))
    d = torch.cdist(x.double(), x.double())
    d.fill_diagonal_(float("inf"))
    want = d.argsort(1)[:, :7]
    assert torch.equal(knn(x, 7), want)


def test_knn_refuses_k_outside_the_points():
    with pytest.raises(ValueError, match="k must be"):
        knn(torch.randn(5, 2), 5)


def test_slot_graph_counts_every_edge_from_both_ends():
    nb = torch.tensor([[1], [0], [1]])  # 0-1, 1-0, 2-1
    z = torch.tensor([0, 1, 1])
    W = slot_graph(nb, z, 3)
    assert torch.equal(W, torch.tensor([[0.0, 2, 0], [2, 2, 0], [0, 0, 0]], dtype=torch.float64))
    assert float(W.sum()) == 2 * nb.numel()


def test_two_cliques_each_split_in_two_merge_back_to_two():
    # Two 6-cliques joined by one edge; slots split each clique in half.
    W = torch.zeros(12, 12)
    W[:6, :6] = 1
    W[6:, 6:] = 1
    W.fill_diagonal_(0)
    W[0, 6] = W[6, 0] = 1
    z = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    onehot = torch.nn.functional.one_hot(z, 4).double()
    S = onehot.t() @ W.double() @ onehot  # the slot graph of this point graph
    m = modularity_merges(S)
    assert m.slot[0] == m.slot[1] and m.slot[2] == m.slot[3] and m.slot[0] != m.slot[2]
    assert len(m.gains) == 2 and all(g > 0 for g in m.gains)


@pytest.mark.parametrize("K", [8, 20])
def test_overclustered_blobs_merge_back_to_the_true_clusters(K):
    x, y = blobs([0.25] * 4)
    z = kmeans(x, K, generator=torch.Generator().manual_seed(0)).labels
    m = merge_slots(x, z, K)
    zm = m.slot[z]
    assert len(zm.unique()) == 4
    assert purity(zm, y) == 1.0


@pytest.mark.parametrize("gamma", [1.0, 0.5])  # 0.5: MIC-GANs' default resolution
def test_forty_slots_of_ten_close_blobs_become_ten(gamma):
    x, y = blobs([0.1] * 10, n=6000, d=20, sep=3.0)
    z = kmeans(x, 40, generator=torch.Generator().manual_seed(0)).labels
    zm = merge_slots(x, z, 40, gamma=gamma).slot[z]
    assert len(zm.unique()) == 10
    assert purity(zm, y) > 0.99


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_minority_clusters_keep_their_own_slots(gamma):
    shares = [0.30, 0.20, 0.13, 0.09, 0.07, 0.06, 0.05, 0.04, 0.03, 0.03]
    x, y = blobs(shares, n=6000, d=20, sep=4.0, seed=2)
    z = kmeans(x, 25, generator=torch.Generator().manual_seed(0)).labels
    zm = merge_slots(x, z, 25, gamma=gamma).slot[z]
    assert len(zm.unique()) == 10
    assert purity(zm, y) > 0.99


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_one_slot_per_cluster_merges_nothing(gamma):
    x, y = blobs([0.1] * 10, n=3000, d=20, sep=3.0, seed=3)
    m = merge_slots(x, y, 12, gamma=gamma)  # two slots empty
    assert torch.equal(m.slot, torch.arange(12)) and m.gains == []


def test_the_larger_slot_keeps_the_points():
    x, y = blobs([0.25] * 4, n=4000, d=10)
    z = y.clone()
    first = y == 0
    z[first & (x[:, 0] < x[first, 0].quantile(0.3))] = 4  # 30% of blob 0 in slot 4
    m = merge_slots(x, z, 5)
    assert m.slot.tolist() == [0, 1, 2, 3, 0]


def test_knn_against_a_reference_set_is_its_exact_nearest_rows():
    g = torch.Generator().manual_seed(4)
    x, ref = torch.randn(300, 5, generator=g), torch.randn(500, 5, generator=g)
    want = torch.cdist(x.double(), ref.double()).argsort(1)[:, :6]
    assert torch.equal(knn(x, 6, ref=ref), want)
    assert torch.equal(knn(ref[:50], 1, ref=ref)[:, 0], torch.arange(50))  # a row of ref finds itself
    with pytest.raises(ValueError, match="k must be"):
        knn(x, 501, ref=ref)


def test_vote_is_the_most_common_neighbour_slot_with_the_own_slot_breaking_ties():
    labels = torch.tensor([0, 1, 1, 2, 2])
    nb = torch.tensor([[1, 2, 3], [3, 4, 0], [0, 3, 1]])  # slots (1, 1, 2), (2, 2, 0), (0, 2, 1)
    assert vote(nb, labels, 3).tolist() == [1, 2, 0]  # the last a three-way tie: the lowest slot
    assert vote(nb, labels, 3, own=torch.tensor([0, 0, 2])).tolist() == [1, 2, 2]


def test_propagation_gives_back_the_points_a_table_put_in_wrong_slots():
    # Four blobs, a quarter of the points in a random wrong slot: their neighbours outvote them.
    x, y = blobs([0.25] * 4, n=4000, d=10)
    g = torch.Generator().manual_seed(1)
    z = torch.where(torch.rand(4000, generator=g) < 0.25, torch.randint(0, 4, (4000,), generator=g), y)
    assert purity(z, y) < 0.85
    zs = propagate(knn(x, 10), z, 4, sweeps=10)
    assert torch.equal(zs, y)
    assert torch.equal(propagate(knn(x, 10), z, 4, sweeps=0), z)


def test_propagation_keeps_a_minority_cluster():
    shares = [0.30, 0.20, 0.13, 0.09, 0.07, 0.06, 0.05, 0.04, 0.03, 0.03]
    x, y = blobs(shares, n=6000, d=20, sep=4.0, seed=2)
    zs = propagate(knn(x, 10), y, 10, sweeps=10)
    assert len(zs.unique()) == 10 and purity(zs, y) > 0.99


def twins_with_a_noisy_cut(seed=0, n=4000, gap=2.0, tau=0.5):
    """Four blobs, each two halves a `gap` apart along a random direction (a class G draws as two
    styles), labelled as a Gibbs sample does: a slot per half, with the labels near the cut flipped
    with probability sigmoid(-distance / tau). Returns x (n, 10), the class (n,), the slots (n,)."""
    x, y = blobs([0.25] * 4, n=n, d=10, sep=8.0, seed=seed)
    g = torch.Generator().manual_seed(seed + 10)
    w = torch.randn(10, generator=g)
    w = w / w.norm()
    z = torch.empty_like(y)
    for c in range(4):
        m = y == c
        d = x[m] @ w
        d = d - d.median()
        side = (d > 0) ^ (torch.rand(int(m.sum()), generator=g) < torch.sigmoid(-d.abs() / tau))
        x[m] += (gap / 2) * torch.where(d > 0, 1.0, -1.0)[:, None] * w
        z[m] = 2 * c + side.long()
    return x, y, z


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merges_read_from_the_chain_find_the_twins_that_smoothing_hides(seed):
    """Smoothing moves each twin border to where it cuts the fewest links, and the twins then look
    like two clusters; the chain's noisy cut still shows their contact. Merging first gives one slot
    per class; smoothing first keeps all eight. Purity stays 1 either way."""
    x, y, z = twins_with_a_noisy_cut(seed)
    found = {}
    for first in (False, True):
        smoothed, merges = mend_table(x, z, 8, 10, sweeps=10, merge_first=first)
        table = merges.slot[smoothed]
        assert purity(table, y) == 1.0
        found[first] = len(table.unique())
    assert found == {False: 8, True: 4}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lower_resolution_merges_twins_that_touch_less_than_the_null_model_expects(seed):
    """Twins with a sharp cut share fewer links than the configuration model expects of two slots
    their size (observed / expected 0.6-0.9 here), so modularity at gamma = 1 keeps them apart:
    a class G draws in two styles that Q embeds side by side. gamma = 0.5 merges each pair, and
    only those: four slots, purity 1."""
    x, y, z = twins_with_a_noisy_cut(seed, tau=0.1)
    found = {}
    for gamma in (1.0, 0.5):
        smoothed, merges = mend_table(x, z, 8, 10, sweeps=10, gamma=gamma, merge_first=True)
        table = merges.slot[smoothed]
        assert purity(table, y) == 1.0
        found[gamma] = len(table.unique())
    assert found == {1.0: 8, 0.5: 4}


def test_too_few_points_for_a_graph_change_nothing():
    x, z = torch.randn(5, 3), torch.tensor([0, 1, 1, 2, 2])
    smoothed, merges = mend_table(x, z, 3, neighbours=10, sweeps=10)
    assert torch.equal(smoothed, z) and torch.equal(merges.slot, torch.arange(3)) and merges.gains == []

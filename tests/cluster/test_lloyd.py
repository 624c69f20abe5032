"""The Lloyd iterations of k-means, with Elkan and Hamerly bounds, against textbook Lloyd."""

import pytest
import torch

from selfcond.cluster.kmeans import kmeans
from test_kmeans import gen, mixture


def _plain_lloyd(x, centers, max_iter, tol):
    """Textbook Lloyd (no bounds) as a reference; same stopping rule as kmeans()."""
    tol_abs = tol * float(x.var(0, unbiased=False).mean())
    for it in range(1, max_iter + 1):
        lab = torch.cdist(x.double(), centers.double()).argmin(1)
        new = torch.stack([x[lab == j].mean(0) for j in range(len(centers))])
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= tol_abs:
            break
    lab = torch.cdist(x.double(), centers.double()).argmin(1)
    return centers, lab, it


@pytest.mark.parametrize("elkan", [True, False])
def test_bounded_lloyd_matches_plain_lloyd(monkeypatch, elkan):
    # Overlapping clusters, so many points change label and the bounds really matter.
    import selfcond.cluster.lloyd as lloyd

    if not elkan:
        monkeypatch.setattr(lloyd, "_ELKAN_MAX_FLOATS", 0)  # force the Hamerly path
    x, _, _ = mixture(n=3000, k=8, d=6, spread=4.0, seed=5)
    init = x[torch.randperm(3000, generator=gen(1))[:8]]
    ref_c, ref_lab, ref_it = _plain_lloyd(x, init.clone(), 300, 1e-4)
    res = kmeans(x, 8, init=init, max_iter=300, tol=1e-4)
    assert ref_it > 5  # a real run, not an instant convergence
    assert res.n_iter == ref_it
    assert torch.equal(res.labels, ref_lab)
    assert torch.allclose(res.centers, ref_c.float(), atol=1e-4)

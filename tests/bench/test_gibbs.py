import torch

from selfcond.bench.gibbs import make_embeddings, markdown, markdown_blocks, run, run_blocks
from selfcond.bench.published_micgans import published_loop


def test_published_loop_follows_the_argmax_start_on_separated_data():
    x, y = make_embeddings(300, 3, 3, seed=0)
    z = published_loop(x, torch.eye(3), 0.1 * torch.eye(3).expand(3, 3, 3), sweeps=2, seed=0)
    assert z.shape == (300,) and z.dtype == torch.int64
    assert (z == y).float().mean() > 0.95  # one-hot means: slot k is component k


def test_gibbs_bench_tiny():
    rec = run(n=300, d=3, k=3, sweeps=2, seed=0, threads=1, repeats=3)
    assert len(rec["fast_seconds_all"]) == 3
    assert rec["fast_seconds"] == sorted(rec["fast_seconds_all"])[1]  # the median run
    for key in ("fast_seconds", "exact_seconds", "published_seconds", "published_measured_seconds"):
        assert rec[key] > 0
    assert rec["published_points"] == 300 and not rec["published_extrapolated"]
    assert rec["speedup_fast"] > 0 and rec["speedup_exact"] > 0
    for name in ("start", "fast", "exact", "published"):
        s = rec["scores"][name]
        assert set(s) >= {"purity", "nmi", "ari", "live"}
        assert s["ari"] > 0.9  # well-separated components, right start
    assert "| selfcond fast sweep" in markdown(rec)


def test_published_loop_subset_is_extrapolated():
    rec = run(n=400, d=3, k=3, sweeps=1, seed=1, threads=1, loop_points=100)
    assert rec["published_points"] == 100 and rec["published_extrapolated"]
    assert abs(rec["published_seconds"] - 4 * rec["published_measured_seconds"]) < 1e-2
    assert "extrapolated" in markdown(rec)


def test_block_accuracy_exact_row_is_the_reference():
    rec = run_blocks(n=200, d=3, k_true=3, k=6, std=0.1, blocks=(1, 25), sweeps=30, burn=10, chains=2)
    exact, fast = rec["rows"]
    assert exact["exact"] and not fast["exact"] and fast["block"] == 25
    # well separated: both chains sit on the 3 components (a stray singleton slot at most)
    for r in (exact, fast):
        assert r["live_mean"] < 4 and r["ari_last"] > 0.95 and len(r["log_joint_chains"]) == 2
    assert fast["log_joint_mean"] <= exact["log_joint_mean"] + 1.0  # the exact chain is nearer the mode
    assert exact["seconds_per_sweep"] > 0 and fast["seconds_per_sweep"] > 0
    table = markdown_blocks(rec)
    assert "| exact sequential |" in table and "| fast sweep, block 25 | 1/8 |" in table

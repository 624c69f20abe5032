"""Each paper benchmark end to end on tiny settings: records, tables, the JSON the CLI writes."""

import json

import numpy as np
import pytest

from selfcond.bench import clusters, snapshot, stacked_mnist
from selfcond.data.idx import write_idx
from selfcond.metrics import classifier

TINY = {"model.g_width": 8, "model.d_width": 8, "model.z_dim": 16, "train.batch": 16,
        "method.recluster_every": 10, "method.init_steps": 10, "method.epoch_steps": 10, "method.q_steps": 5,
        "train.snapshot_every": 1000}


@pytest.fixture(autouse=True)
def quick_classifiers(tmp_path, monkeypatch):
    """A classifier recipe of seconds, in a private cache."""
    monkeypatch.setenv("SELFCOND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(classifier, "_LOADED", {})
    monkeypatch.setattr(classifier, "DEFAULT", classifier.Recipe(epochs=1, min_steps=0))


def test_clusters_bench_on_digits():
    recs = clusters.run(["digits"], ["scgan", "micgan"], k=4, trials=1, steps=20, overrides=TINY)
    assert [(r["method"], r["trial"]) for r in recs] == [("scgan", 0), ("micgan", 0)]
    for r in recs:
        assert 0 < r["purity"] <= 1 and 0 < r["purity_top"] <= 1 and r["k_found"] >= 1 and r["fid_cls"] > 0
        # the record says how the trial was configured: the --set keys of its method
        assert r["set"] == {k: v for k, v in TINY.items()
                            if r["method"] == "micgan" or k not in ("method.init_steps", "method.epoch_steps", "method.q_steps")
                            if r["method"] == "scgan" or k != "method.recluster_every"}
        # the chain after each refresh (one here, at step 10); the last is the table scored
        assert [(x["step"], x["modes_alive"]) for x in r["rounds"]] == [(10, r["modes_alive"])]
        assert r["rounds"][-1]["purity"] == round(r["purity"], 4) and r["rounds"][-1]["k_found"] == r["k_found"]
    table = clusters.markdown(recs)
    assert "| digits | micgan | 4 | 1 | 20 |" in table


def test_stacked_bench_on_tiny_mnist_files(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (300, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(300) % 10)
    over = {**{k: v for k, v in TINY.items() if not k.startswith("method.")}, "data.stack_n": 400,
            "train.eval_samples": 500}
    recs = stacked_mnist.run(["gan"], trials=1, steps=5, data_dir=str(tmp_path), overrides=over)
    r = recs[0]
    assert 1 <= r["modes"] <= 500 and r["rkl"] >= 0 and r["samples"] == 500 and 0 <= r["classifier_accuracy"] <= 1
    assert "| gan | 1 | 5 |" in stacked_mnist.markdown(recs)


def test_snapshot_overhead_record():
    rec = snapshot.run("digits", steps=3, snapshots=1,
                                overrides={"model.g_width": 8, "model.d_width": 8, "method.k": 4})
    assert rec["checkpoint_s"] > 0 and rec["snapshot_s"] >= rec["checkpoint_s"] > 0
    assert 0 < rec["snapshot_share"] < 1 and "| digits 32 px" in snapshot.markdown(rec)
    json.dumps(rec)


def test_sigterm_on_a_parallel_bench_takes_its_workers_down(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("from selfcond.bench.runner import run_jobs\n"
            "import time\n"
            "def slow(job):\n"
            "    time.sleep(600)\n"
            "if __name__ == '__main__':\n"
            "    run_jobs([{}, {}], slow, jobs=2)\n")
    script = tmp_path / "bench.py"
    script.write_text(code)
    p = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    time.sleep(8)  # the workers are up
    children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert children, "no worker processes"
    os.kill(p.pid, signal.SIGTERM)
    p.wait(timeout=60)
    time.sleep(1)
    alive = [c for c in children if os.path.exists(f"/proc/{c}") and "Z" not in open(f"/proc/{c}/stat").read().split()[2]]
    assert not alive, f"workers left running: {alive}"


def test_kmeans_bench_times_the_partitions_call():
    from selfcond.bench import kmeans as kmeans_bench

    rec = kmeans_bench.run(n=400, d=16, k=5, threads=1)
    assert rec["ours_max_iter"] == 100  # what partition/kmeans.py passes (method.kmeans_iters)
    assert rec["ours_seconds"] > 0 and rec["sklearn_seconds"] > 0 and rec["sklearn1_seconds"] > 0
    assert 0.9 < rec["inertia_ratio"] < 1.2 and 0.9 < rec["inertia_ratio_sklearn1"] < 1.2
    assert "the paper's call" in kmeans_bench.markdown(rec)


def test_nets_bench_measures_each_family_in_its_own_process():
    from selfcond.bench import nets

    recs = nets.run(families=("dcgan", "resnet-sngan"), resolutions=(32, 64), batch=4, seconds=0.2, threads=1,
                    progress=False)
    assert [(r["family"], r["resolution"]) for r in recs] == [("dcgan", 32), ("dcgan", 64), ("resnet-sngan", 32)]
    for r in recs:
        assert r["images_per_s"] > 0 and r["steps"] >= 2 and r["peak_rss_mb"] >= r["rss_before_training_mb"] > 0
        assert r["g_params"] > 0 and r["d_params"] > 0
    assert recs[1]["g_params"] > recs[0]["g_params"]  # 64 px: one more up-sampling stage
    assert "| resnet-sngan | 32 |" in nets.markdown(recs)


def test_nets_bench_refuses_an_unknown_family_in_one_line():
    from clirun import cli

    r = cli("bench", "nets", "--families", "dcgan,vit")
    assert r.returncode == 2 and "unknown family 'vit'" in r.stderr


def test_every_bench_module_registers_its_verb():
    from clirun import cli

    r = cli("bench", "--help")
    assert r.returncode == 0
    for verb in ("2d", "stacked-mnist", "clusters", "kmeans", "gibbs", "gibbs-blocks", "snapshot", "export", "nets"):
        assert f"  {verb} " in r.stdout, verb
    bad = cli("bench", "2d", "--methods", "gan,scgan", "--set", "method.alpha=2", "--trials", "1")
    assert bad.returncode == 2 and "none of the methods gan, scgan has that option" in bad.stderr

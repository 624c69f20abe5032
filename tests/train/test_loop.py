import json

import pytest
import torch

from selfcond.config import resolve
from selfcond.train import Trainer, checkpoint, start_run
from selfcond.train.rundir import new_run_dir


def cfg2d(**over):
    base = {"data.name": "grid", "method.name": "scgan", "train.threads": 1, "train.eval_samples": 5000}
    return resolve(overrides={**base, **over})


def test_short_scgan_run_on_grid_covers_most_modes():
    """The acceptance test of issue 2: a budget that runs in well under a minute."""
    t = Trainer(cfg2d(**{"train.steps": 1500, "method.recluster_every": 500}))
    t.train(progress=False)
    m = t.evaluate(50_000)
    assert m["modes"] >= 20, m
    assert t.partition.summary()["modes_alive"] > 25


# MIC-GANs rounds at steps 30, 60 (the interruption point) and 90: Q, Gaussians and Gibbs state resume.
MICGAN_FAST = {"method.init_steps": 30, "method.epoch_steps": 30, "method.q_steps": 5}


# Options of each method in the resume test: small, and refreshing before the interruption.
METHOD_OVER = {"scgan": {"method.recluster_every": 40, "method.k": 10, "method.cluster_samples": 500},
               "random": {"method.k": 10}, "mbd": {"method.mbd_kernels": 4},
               "micgan": {"method.k": 10, "method.cluster_samples": 500, **MICGAN_FAST}}


@pytest.mark.parametrize("method", ["scgan", "gan", "pacgan", "mbd", "cgan", "random", "micgan"])
def test_resume_continues_bit_for_bit(tmp_path, method):
    # Small nets: this tests state, not quality.
    over = {"method.name": method, "train.snapshot_every": 60, "train.log_every": 20,
            "model.g_width": 32, "model.d_width": 16, "train.ema": 0.99, **METHOD_OVER.get(method, {})}
    straight = Trainer(cfg2d(**over, **{"train.steps": 120}))
    straight.train(progress=False)

    first = start_run(cfg2d(**over, **{"train.steps": 60}), tmp_path)
    first.train(progress=False)
    state = checkpoint.read(first.run_dir)
    resumed = Trainer(cfg2d(**over, **{"train.steps": 120}), first.run_dir)
    resumed.load_state_dict(state)
    resumed.train(progress=False)

    for a, b in [(straight.G, resumed.G), (straight.D, resumed.D), (straight.G_ema, resumed.G_ema)]:
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
    assert torch.equal(straight.partition.counts, resumed.partition.counts)
    assert straight.evaluate() == resumed.evaluate()


def test_no_refresh_after_the_last_step():
    t = Trainer(cfg2d(**{"train.steps": 80, "method.recluster_every": 40, "method.k": 10,
                         "method.cluster_samples": 500, "model.g_width": 32, "model.d_width": 16}))
    t.train(progress=False)
    assert t.last_refresh == 40  # not 80: G never trained under an 80th-step partition
    t.cfg.train.steps = 120
    t.train(progress=False)  # continuing past 80 runs that refresh first
    assert t.last_refresh == 80


def test_moving_average_of_g_ramps_up_then_decays():
    t = Trainer(cfg2d(**{"train.ema": 0.99, "model.g_width": 8, "model.d_width": 8}))
    g, ema = next(t.G.parameters()), next(t.G_ema.parameters())
    with torch.no_grad():
        g.fill_(1.0)
        ema.fill_(0.0)
        t.G.net[1].running_mean.fill_(3.0)  # BatchNorm statistics are copied, not averaged
    t.step = 0
    t._update_ema()  # ramp-up: beta = 1/10
    assert torch.allclose(ema, torch.full_like(ema, 0.9))
    assert torch.equal(t.G_ema.net[1].running_mean, t.G.net[1].running_mean)
    t.step = 10_000
    t._update_ema()  # beta = train.ema
    assert torch.allclose(ema, torch.full_like(ema, 0.9 * 0.99 + 0.01))
    t.last_refresh = 10_000  # a refresh re-labelled the data: the ramp starts again
    with torch.no_grad():
        ema.fill_(0.0)
    t._update_ema()
    assert torch.allclose(ema, torch.full_like(ema, 0.9))
    assert not t.G_ema.training and not any(p.requires_grad for p in t.G_ema.parameters())


def test_samples_come_from_the_moving_average_and_from_g_without_it():
    small = {"train.steps": 30, "model.g_width": 16, "model.d_width": 16, "method.k": 5,
             "method.cluster_samples": 200}
    with_avg, without = Trainer(cfg2d(**small, **{"train.ema": 0.9})), Trainer(cfg2d(**small, **{"train.ema": 0}))
    for t in (with_avg, without):
        t.train(progress=False)
    assert without.G_ema is None and without.g_eval is without.G
    assert with_avg.g_eval is with_avg.G_ema
    y = torch.zeros(4, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    x, _ = with_avg.sample(4, gen, y)
    with torch.no_grad():
        assert torch.equal(x, with_avg.G_ema(z, y))
        assert not torch.equal(x, with_avg.G.eval()(z, y))  # G itself has moved on


def test_run_directory_contents(tmp_path):
    t = start_run(cfg2d(**{"train.steps": 40, "train.snapshot_every": 20, "train.log_every": 10,
                           "method.cluster_samples": 200, "method.k": 5, "model.g_width": 32,
                           "model.d_width": 16}), tmp_path)
    t.train(progress=False)
    d = t.run_dir
    assert d.name == "00000-grid-scgan-k5"
    names = {p.name for p in d.iterdir()}
    assert {"config.yaml", "stats.jsonl", "metrics.jsonl", "log.txt", "latest",
            "fakes_00000020.png", "fakes_00000040.png", "checkpoint-00000040.pt"} <= names
    assert (d / "fakes_00000040.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = [json.loads(line) for line in (d / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [10, 20, 30, 40]
    assert {"loss_d", "loss_g", "steps_per_s", "modes_alive"} <= set(stats[0])
    state = torch.load(d / "checkpoint-00000040.pt", weights_only=True)
    assert state["step"] == 40 and state["config"]["method"]["k"] == 5


def test_run_directories_are_numbered_and_never_reused(tmp_path):
    a = new_run_dir(tmp_path, "grid-gan")
    (a / "precious.txt").write_text("keep")
    b = new_run_dir(tmp_path, "grid-gan")
    assert (a.name, b.name) == ("00000-grid-gan", "00001-grid-gan")
    assert (a / "precious.txt").read_text() == "keep"


def test_checkpoints_keep_the_newest_and_a_corrupt_one_is_refused(tmp_path):
    for step in range(5):
        checkpoint.save(tmp_path, {"step": torch.tensor(step)}, step, keep=2)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pt")) == [
        "checkpoint-00000003.pt", "checkpoint-00000004.pt"]
    assert int(checkpoint.read(tmp_path)["step"]) == 4
    (tmp_path / "checkpoint-00000004.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(Exception, match="corrupt or unreadable"):
        checkpoint.read(tmp_path)


def tiny_digits(**over):
    return resolve(overrides={"method.name": "scgan", "method.k": 4, "model.g_width": 8, "model.d_width": 8,
                              "model.z_dim": 16, "model.embed_dim": 8, "train.batch": 16,
                              "train.snapshot_every": 10,
                              **({"method.recluster_every": 5} if over.get("method.name", "scgan") == "scgan" else {}),
                              **over})


def test_tiny_image_run_writes_grids_modes_and_a_checkpoint(tmp_path):
    t = start_run(tiny_digits(**{"train.steps": 10}), tmp_path)
    t.train(progress=False)
    d = t.run_dir
    assert d.name == "00000-digits-scgan-k4"
    for name in ("fakes_00000010.png", "reals.png", "modes.json", "modes_x_labels.png", "checkpoint-00000010.pt"):
        assert (d / name).is_file(), name
    modes = json.loads((d / "modes.json").read_text())
    assert len(modes["pi"]) == 4 and abs(sum(modes["pi"]) - 1) < 1e-9
    table = torch.tensor(modes["mode_x_label"])
    assert table.shape == (4, 10) and int(table.sum()) == 1797  # every image has a mode
    m = json.loads((d / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.1 <= m["purity"] <= 1 and m["k_found"] >= 1


def test_modes_history_has_every_refresh_even_on_a_snapshot_step(tmp_path):
    # Re-clustering at 5, 10, 15; snapshots at 10 and 20: step 10 is recorded as trained, then refreshed.
    t = start_run(tiny_digits(**{"train.steps": 20}), tmp_path)
    t.train(progress=False)
    history = [json.loads(line) for line in (t.run_dir / "modes.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [5, 10, 10, 15, 20]
    assert history[-1]["counts"] == t.partition.counts.tolist()


@pytest.mark.parametrize("method", ["scgan", "micgan"])
def test_tiny_image_run_resumes_bit_for_bit(tmp_path, method):
    over = {"method.name": method, "method.k": 4,
            **({"method.init_steps": 5, "method.epoch_steps": 5, "method.q_steps": 3} if method == "micgan" else {})}
    straight = Trainer(tiny_digits(**over, **{"train.steps": 20}))
    straight.train(progress=False)
    first = start_run(tiny_digits(**over, **{"train.steps": 10}), tmp_path)
    first.train(progress=False)
    state = checkpoint.read(first.run_dir)
    if method == "scgan":  # images are kept as dataset indices, not pixels
        assert state["partition"]["x_cluster"] is None and state["partition"]["cluster_index"].shape == (1797,)
    resumed = Trainer(tiny_digits(**over, **{"train.steps": 20}), first.run_dir)
    resumed.load_state_dict(checkpoint.read(first.run_dir))
    resumed.train(progress=False)
    for (name, p), q in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(p, q), name
    assert torch.equal(straight.partition.table, resumed.partition.table)


def test_a_checkpoint_from_another_kind_of_device_reseeds_and_trains_on(tmp_path):
    """A CUDA generator's state cannot be set on a CPU generator: the run continues, reseeded from
    (seed, step), and does so the same way every time."""
    first = start_run(tiny_digits(**{"train.steps": 10}), tmp_path)
    first.train(progress=False)
    runs = []
    for _ in range(2):
        state = checkpoint.read(first.run_dir)  # fresh: loading shares tensors that training mutates
        state["rng"]["device"], state["rng"]["generator"] = "cuda", torch.zeros(16, dtype=torch.uint8)
        t = Trainer(tiny_digits(**{"train.steps": 20}), first.run_dir)
        t.load_state_dict(state)
        t.train(progress=False)
        runs.append(t)
    assert runs[0].step == 20
    for p, q in zip(runs[0].G.parameters(), runs[1].G.parameters()):
        assert torch.equal(p, q)


def test_side_streams_never_share_a_seed():
    """Evaluation streams (offsets 1-4) and the reseeded stream of a moved run stay apart, even
    for a run moved at steps 1-4."""
    from selfcond.train.loop import MOVED, stream_seed

    evals = {stream_seed(7, off) for off in range(1, 5)}
    moved = {stream_seed(7, MOVED + step) for step in range(0, 10_000)}
    assert len(evals) == 4 and not evals & moved

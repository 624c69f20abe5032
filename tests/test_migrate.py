"""Runs written by selfcond 0.1 (checkpoint and config version 1, tests/fixtures/runs-v1) still
generate, evaluate and resume, to the same bytes as 0.1 gave (tests/golden/digests.json); and
version-1 configs are read as they were meant."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import selfcond
from selfcond import config
from selfcond.errors import UserError
from selfcond.train import checkpoint
from test_golden import GOLDEN, HERE, SAME_MACHINE, checkpoint_digest, generate_digest, resume_v1

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v1"
bits = pytest.mark.skipif(not SAME_MACHINE, reason="digests are of another torch build or CPU")


@pytest.fixture
def v1_run(tmp_path):
    def copy(name: str) -> Path:
        return Path(shutil.copytree(FIXTURES / name, tmp_path / name))
    return copy


@pytest.mark.parametrize("name", sorted(GOLDEN["v1_fixtures"]))
def test_a_v1_run_loads_as_written(v1_run, name):
    run = v1_run(name)
    assert checkpoint.read(run)["version"] == 1
    m = selfcond.load(run, device="cpu")
    assert m.step == 20 and m.cfg.method.name == yaml.safe_load((run / "config.yaml").read_text())["method"]["name"]
    x, _ = m.generate(4)
    assert x.shape[0] == 4


@bits
@pytest.mark.parametrize("name", sorted(GOLDEN["v1_fixtures"]))
def test_a_v1_run_generates_and_resumes_to_the_same_bytes(tmp_path, name):
    want = HERE["v1_fixtures"][name]
    run, before = resume_v1(name, tmp_path)
    assert before == want["generate"]
    state = checkpoint.read(run)
    assert state["version"] == checkpoint.VERSION and state["step"] == GOLDEN["v1_fixtures"][name]["resumed_step"]
    assert checkpoint_digest(state) == want["resumed_checkpoint"]
    assert yaml.safe_load((run / "config.yaml").read_text())["version"] == 2  # rewritten as today's


def test_a_v1_run_evaluates(v1_run):
    m = selfcond.load(v1_run("digits-scgan"), device="cpu")
    out = m.evaluate(["purity"], record=False)
    assert 0 < out["purity"] <= 1


def test_a_v1_config_file_reproduces_its_run(v1_run):
    """`--config runs/X/config.yaml` of a 0.1 run: the keys its method did not use are dropped, PacGAN's
    packing moves to the method."""
    cfg = config.resolve(config.load_yaml(v1_run("ring-pacgan") / "config.yaml"))
    assert cfg.method.name == "pacgan" and cfg.method.pack == 2
    assert "alpha" not in config.options_of(cfg)["method"]
    assert config.resolve(config.load_yaml(v1_run("digits-micgan") / "config.yaml")).method.q_shift == 2


def test_v1_gan_with_packing_was_pacgan():
    tree = config.resolve().to_dict()  # any full dump, made version 1 by hand
    v1 = {"data": {"name": "ring"}, "model": {"pack": 2, "mbd_kernels": 0, "mbd_dim": 5},
          "method": {"name": "gan", "alpha": 3.0}, "train": {}}
    assert tree["version"] == 2
    cfg = config.resolve(v1)
    assert cfg.method.name == "pacgan" and cfg.method.pack == 2
    with pytest.raises(UserError, match="combines model.pack and model.mbd_kernels"):
        config.resolve({**v1, "model": {"pack": 2, "mbd_kernels": 4}})


def test_todays_config_names_where_a_moved_key_went():
    with pytest.raises(UserError, match="'model.pack' is 'method.pack' since config version 2"):
        config.resolve({"version": 2, "model": {"pack": 2}})
    with pytest.raises(UserError, match="unknown key 'method.alpha' for method scgan"):
        config.resolve({"version": 2, "method": {"name": "scgan", "alpha": 2.0}})


def test_a_micgan_run_started_before_merges_continues_without_them(v1_run):
    """A checkpoint's config holds every key, so a MIC-GANs run without method.merge_from began
    before merges existed: it resumes (and is scored) as it was trained, while a new run merges."""
    run = v1_run("digits-micgan")
    _, cfg = checkpoint.load(run)
    assert cfg.method.merge_from == 0 and cfg.method.smooth_sweeps == 0 and cfg.method.scale_prior is False
    assert cfg.method.merge_on == "smoothed" and cfg.method.merge_resolution == 1.0  # how its merges were made
    state = checkpoint.read(run)
    state["config"]["method"]["merge_from"] = 3  # a run that chose its round keeps it
    method = checkpoint.migrate(state)["config"]["method"]
    assert method["merge_from"] == 3
    assert method["smooth_sweeps"] == 0  # it merged without smoothing, which came later
    state["config"]["method"]["smooth_sweeps"] = 4
    assert checkpoint.migrate(state)["config"]["method"]["smooth_sweeps"] == 4
    new = config.resolve(overrides={"method.name": "micgan"}).method
    assert (new.merge_from, new.smooth_sweeps, new.scale_prior, new.merge_resolution) == (2, 10, True, 0.5)

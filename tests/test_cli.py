"""The command line as a user meets it: real subprocesses, one-line errors, exit codes."""

import json
import subprocess
import sys

import pytest


from clirun import cli
from clirun import cli_process as selfcond


TINY = ["--set", "model.g_width=32", "--set", "model.d_width=16", "--threads", "1", "--quiet"]
SCGAN = ["--set", "method.cluster_samples=200"]  # Self-Conditioned GAN clusters a small sample


def test_train_writes_a_run_and_prints_json(tmp_path):
    r = selfcond("train", "--data", "grid", "--method", "scgan", "--k", "5", "--steps", "30",
                 "--snapshot-every", "15", "--out", str(tmp_path), *TINY, *SCGAN)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["step"] == 30 and {"modes", "hq", "rkl"} <= set(result)
    run = tmp_path / "00000-grid-scgan-k5"
    assert (run / "fakes_00000030.png").is_file() and (run / "config.yaml").is_file()


def test_resume_continues_and_refuses_changed_keys(tmp_path):
    r = selfcond("train", "--data", "ring", "--method", "gan", "--steps", "20", "--snapshot-every", "10",
                 "--out", str(tmp_path), *TINY)
    assert r.returncode == 0, r.stderr
    run = next(tmp_path.iterdir())
    r = selfcond("train", "--resume", str(run), "--steps", "40", "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step"] == 40
    r = selfcond("train", "--resume", str(run), "--steps", "60", "--set", "train.lr=0.1")
    assert r.returncode == 2 and "cannot change train.lr" in r.stderr


def test_resume_accepts_a_checkpoint_older_than_a_config_key(tmp_path):
    import torch

    r = selfcond("train", "--data", "ring", "--method", "gan", "--steps", "10", "--snapshot-every", "10",
                 "--out", str(tmp_path), *TINY)
    assert r.returncode == 0, r.stderr
    run = next(tmp_path.iterdir())
    path = run / (run / "latest").read_text().strip()
    state = torch.load(path, weights_only=True)
    del state["config"]["train"]["r1"]  # as if written before train.r1 existed
    torch.save(state, path)
    r = selfcond("train", "--resume", str(run), "--steps", "20", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "predates train.r1; using train.r1=0.0" in r.stderr
    assert json.loads(r.stdout)["step"] == 20


def test_dry_run_prints_the_resolved_config(tmp_path):
    r = selfcond("train", "--data", "ring", "--method", "pacgan", "--dry-run", "--out", str(tmp_path))
    assert r.returncode == 0 and "pack: 2" in r.stdout
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "ring", "--k", "0"], "method.k must be >= 1"),
    (["train", "--data", "ring", "--steps", "-3"], "train.steps must be >= 0"),
    (["train", "--data", "nowhere"], "unknown dataset 'nowhere'"),
    (["train", "--config", "missing.yaml"], "config file not found"),
    (["train", "--data", "ring", "--set", "train.stepz=3"], "unknown key 'train.stepz'"),
    (["train", "--resume", "no/such/run"], "no run directory or checkpoint at no/such/run"),
    (["bench", "2d", "--data", "moon"], "unknown dataset 'moon'"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    r = cli(*args, "--out", str(tmp_path)) if args[0] == "train" else cli(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not any(p.name[0].isdigit() for p in tmp_path.iterdir())  # no half-written run


def test_bench_2d_prints_a_table_and_writes_records(tmp_path):
    out = tmp_path / "r.json"
    r = selfcond("bench", "2d", "--data", "ring", "--methods", "gan,cgan", "--trials", "2", "--steps", "20",
                 "--set", "model.g_width=32", "--set", "model.d_width=16", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "| ring | gan | 2 |" in r.stdout and "| ring | cgan | 2 |" in r.stdout
    records = json.loads(out.read_text())
    assert len(records) == 4
    assert set(records[0]) >= {"bench", "dataset", "method", "trial", "seed", "steps", "seconds",
                               "modes", "hq", "rkl"}
    assert [r["seed"] for r in records if r["method"] == "gan"] == [0, 1]


def test_sigint_saves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    import signal
    import time

    import torch

    proc = subprocess.Popen([sys.executable, "-m", "selfcond", "train", "--data", "grid", "--method", "scgan",
                             "--k", "5", "--steps", "100000", "--out", str(tmp_path), *TINY, *SCGAN],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("*/stats.jsonl")):
        time.sleep(0.2)  # wait until training has logged (log_every = 500 steps)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err
    run = next(tmp_path.iterdir())
    state = torch.load(run / (run / "latest").read_text().strip(), weights_only=True)
    assert 500 <= state["step"] < 100000
    r = selfcond("train", "--resume", str(run), "--steps", str(state["step"] + 10), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["step"] == state["step"] + 10

"""Several ranks with torchrun on CPU (gloo), started by the tests: a 2-rank run covers the grid as
one rank does, resumes exactly at its own world size and correctly at another, keeps every rank's
weights equal (and says so when they are not), and survives a killed rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import selfcond
from selfcond.train import checkpoint, plan_resume, resume

SRC = str(Path(__file__).resolve().parents[2] / "src")
GRID = ["--data", "grid", "--threads", "1", "--quiet", "--set", "train.eval_samples=5000"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def torchrun_cmd(n: int, *args, restarts: int = 0) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
            "--max-restarts", str(restarts), "-m", "selfcond", "train", *map(str, args)]


def torchrun(n: int, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(torchrun_cmd(n, *args), capture_output=True, text=True, timeout=timeout, env=env())
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def only_run(out: Path) -> Path:
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def g_weights(run: Path) -> list[torch.Tensor]:
    return list(checkpoint.read(run)["G"].values())


def test_two_ranks_cover_the_grid_like_one_at_the_same_global_batch(tmp_path):
    """The 1-rank acceptance test's budget (tests/train/test_loop.py): >= 20 of the 25 modes."""
    r = torchrun(2, *GRID, "--steps", 1500, "--set", "method.recluster_every=500", "--snapshot-every", 500,
                 "--out", tmp_path)
    result = json.loads(r.stdout.strip().splitlines()[-1])  # rank 0 alone prints
    assert len(r.stdout.strip().splitlines()) == 1
    assert result["modes"] >= 20, result
    run = only_run(tmp_path)
    assert len(checkpoint.read(run)["rng"]["ranks"]) == 2  # every rank's own stream
    # The ranks shared out G's samples for the snapshot metrics: the same figures as one process
    # scoring the same checkpoint.
    alone = selfcond.load(run, device="cpu").evaluate(None, 5000, record=False)
    shared = [key for key in result if key in alone and key not in ("step", "run")]
    assert "modes" in shared, (result, alone)
    for key in shared:
        assert alone[key] == pytest.approx(result[key], rel=1e-4, abs=1e-6), key


def test_ranks_share_out_a_sample_and_all_receive_it(tmp_path):
    """dist.gathered: each rank puts its block of the rows through G (and through the metric's
    features, when given); every rank gets all n, the same as one process drawing them, for n that
    the ranks do not divide and for n below the world."""
    script = tmp_path / "gathered.py"
    script.write_text(textwrap.dedent("""
        import torch, torch.distributed as td
        from selfcond.train import dist
        dist.init(torch.device("cpu"))
        torch.manual_seed(0)
        g_net = torch.nn.Linear(4, 3)
        calls = []

        def sample(n, generator, y=None, rows=None, apply=None):
            y = torch.randint(5, (n,), generator=generator) if y is None else y
            z = torch.randn(n, 4, generator=generator)
            calls.append(n if rows is None else rows.stop - rows.start)
            with torch.no_grad():
                x = g_net(z if rows is None else z[rows]) + (y if rows is None else y[rows])[:, None]
            return (x if apply is None else apply(x)), y

        ok = True
        for n in (7, 1, 10):
            x1, y1 = sample(n, torch.Generator().manual_seed(n))
            x2, y2 = dist.gathered(sample)(n, torch.Generator().manual_seed(n))
            ok &= torch.equal(x1, x2) and torch.equal(y1, y2)
        # a metric's features (or labels) are made by each rank for its own block, then gathered
        feats = lambda x: torch.stack([x.sum(1), x.max(1).values], 1)
        f1, _ = sample(9, torch.Generator().manual_seed(9), apply=feats)
        f2, _ = dist.gathered(sample)(9, torch.Generator().manual_seed(9), apply=feats)
        l1, _ = sample(9, torch.Generator().manual_seed(9), apply=lambda x: x.argmax(1))
        l2, _ = dist.gathered(sample)(9, torch.Generator().manual_seed(9), apply=lambda x: x.argmax(1))
        ok &= torch.equal(f1, f2) and f2.shape == (9, 2) and torch.equal(l1, l2) and l2.dtype == torch.int64
        open(f"{OUT}/gathered-{td.get_rank()}.txt", "w").write(f"{bool(ok)} {calls}")
        dist.close()
    """).replace("{OUT}", str(tmp_path)))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], capture_output=True, text=True, timeout=120, env=env())
    assert r.returncode == 0, r.stderr[-3000:]
    # rows made per call: one process 7, then this rank's block; 1 alone (below the world); 10 split
    # 5/5; then the features and labels of 9, split 4/5
    assert (tmp_path / "gathered-0.txt").read_text() == "True [7, 3, 1, 1, 10, 5, 9, 4, 9, 4]"
    assert (tmp_path / "gathered-1.txt").read_text() == "True [7, 4, 1, 1, 10, 5, 9, 5, 9, 5]"


def test_two_ranks_resume_exactly_and_move_to_one_rank_and_back(tmp_path):
    args = [*GRID, "--set", "method.recluster_every=20", "--set", "method.cluster_samples=500",
            "--set", "model.g_width=32", "--set", "model.d_width=16", "--snapshot-every", 20]
    torchrun(2, *args, "--steps", 40, "--out", tmp_path / "straight")
    torchrun(2, *args, "--steps", 20, "--out", tmp_path / "split")
    run = only_run(tmp_path / "split")
    torchrun(2, "--resume", run, "--steps", 40, "--quiet", "--out", tmp_path / "split")
    for a, b in zip(g_weights(only_run(tmp_path / "straight")), g_weights(run)):
        assert torch.equal(a, b)  # the same world size: bit for bit

    # 2 ranks -> 1: this process continues the 2-rank checkpoint, its ranks' streams folded into one.
    state = checkpoint.read(run)
    assert state["step"] == 40 and len(state["rng"]["ranks"]) == 2
    t = resume(plan_resume(run, {"train.steps": 60}))
    t.train(progress=False)
    assert t.step == 60 and t.evaluate(5000)["modes"] >= 1
    # 1 rank -> 2: the 1-rank checkpoint at 60 continues on two ranks, each stream reseeded.
    torchrun(2, "--resume", run, "--steps", 80, "--quiet", "--out", tmp_path / "split")
    state = checkpoint.read(run)
    assert state["step"] == 80 and len(state["rng"]["ranks"]) == 2
    assert all(torch.isfinite(w).all() for w in state["G"].values())


def test_ranks_that_disagree_are_stopped_with_a_reason(tmp_path):
    script = tmp_path / "disagree.py"
    script.write_text(textwrap.dedent("""
        import torch, torch.distributed as td
        from selfcond.train import dist
        dist.init(torch.device("cpu"))
        torch.manual_seed(0)  # the same weights on both ranks
        net = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(net.weight, 1.0)
        dist.check_agree(7, G=net, table=torch.arange(5))  # the same everywhere: passes
        if td.get_rank() == 1:
            with torch.no_grad():
                net.weight[0, 0] += 1e-6
        try:
            dist.check_agree(8, G=net, table=torch.arange(5))
        except RuntimeError as e:  # one file per rank: their prints would interleave
            open(f"{OUT}/caught-{td.get_rank()}.txt", "w").write(str(e))
        dist.close()
    """).replace("{OUT}", str(tmp_path)))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], capture_output=True, text=True, timeout=120, env=env())
    assert r.returncode == 0, r.stderr[-2000:]
    for rank in (0, 1):  # both ranks stop, naming the part
        assert (tmp_path / f"caught-{rank}.txt").read_text().startswith("the ranks disagree on G at step 8")


def rank_pid(root_pid: int, rank: int) -> int | None:
    """The pid of the process under `root_pid` whose environment says RANK=rank."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            environ = (p / "environ").read_bytes().split(b"\0")
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"selfcond" in (p / "cmdline").read_bytes():
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            seen = {int(p.name)}
            while ppid > 1 and ppid not in seen:  # under our torchrun?
                if ppid == root_pid:
                    return int(p.name)
                seen.add(ppid)
                try:
                    ppid = int((Path("/proc") / str(ppid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    break
    return None


@pytest.mark.parametrize("restarts", [0, 1])
def test_a_killed_rank_leaves_its_checkpoint_and_a_restart_resumes_it(tmp_path, restarts):
    out = tmp_path / "runs"
    cmd = torchrun_cmd(2, *GRID, "--steps", 400, "--snapshot-every", 50, "--set", "method.recluster_every=100",
                       "--set", "method.cluster_samples=500", "--out", out, restarts=restarts)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.time() + 240
    while not list(out.glob("*/checkpoint-*.pt")) and time.time() < deadline:
        time.sleep(0.2)
    victim = rank_pid(proc.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    run = only_run(out)
    state = checkpoint.read(run)  # intact: written atomically by rank 0
    if restarts == 0:
        assert proc.returncode != 0 and 50 <= state["step"] < 400
        # Rank 0 either sees the broken connection or torchrun's SIGTERM first: one line either way.
        lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, stderr[-3000:]
        assert ("lost another rank" in lines[0] or "interrupted at step" in lines[0]) and \
            "continue with: torchrun ... -m selfcond train --resume" in lines[0], lines[0]
        return
    assert proc.returncode == 0, stderr[-3000:]
    assert "torchrun restarted the job: resuming " + str(run) in stderr
    assert state["step"] == 400 and len(state["rng"]["ranks"]) == 2
    assert json.loads(stdout.strip().splitlines()[-1])["step"] == 400


@pytest.mark.parametrize("world", [3])
def test_a_global_batch_the_ranks_cannot_share_is_one_line(tmp_path, world):
    r = subprocess.run(torchrun_cmd(world, *GRID, "--batch", 64, "--steps", 1, "--out", tmp_path),
                       capture_output=True, text=True, timeout=120, env=env())
    assert r.returncode != 0
    assert "train.batch (64) must be a multiple of the 3 ranks" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("method", ["scgan", "micgan"])
def test_two_ranks_share_the_refresh_of_an_indexed_dataset(tmp_path, method):
    """Each rank labels (scgan) or embeds and samples (micgan) its block of the digits; the gathered
    table is the same on both ranks (checked at every snapshot by the loop) and covers every image,
    and the run's `assign` reproduces it."""
    import selfcond

    schedule = {"scgan": ["--set", "method.recluster_every=20", "--set", "method.cluster_samples=600"],
                "micgan": ["--set", "method.init_steps=20", "--set", "method.epoch_steps=20",
                           "--set", "method.sample_epochs=2", "--set", "method.q_steps=10"]}[method]
    torchrun(2, "--data", "digits", "--method", method, "--k", 10, "--threads", 1, "--quiet", "--steps", 60,
             "--snapshot-every", 20, "--set", "model.g_width=16", "--set", "model.d_width=16",
             "--set", "train.eval_samples=500", *schedule, "--out", tmp_path)
    run = only_run(tmp_path)
    m = selfcond.load(run, device="cpu")
    table = m.trainer.partition.table
    assert table.shape == (1797,) and int(table.max()) < 10
    x = m.trainer.dataset.images(torch.arange(1797))
    assert float((m.assign(x).modes == table).float().mean()) >= 0.99


def test_sync_batchnorm_is_one_batchnorm_over_the_ranks(tmp_path):
    """train.sync_bn: each rank's half of a batch through SyncBatchNorm gives the outputs, the
    parameters' gradients through R1's double backward, and the running statistics of one BatchNorm
    over the whole batch in one process (torch's own SyncBatchNorm refuses the CPU)."""
    script = tmp_path / "syncbn.py"
    script.write_text(textwrap.dedent("""
        import copy, torch, torch.distributed as td
        from selfcond.train import dist
        dist.init(torch.device("cpu"))
        rank = td.get_rank()
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                  torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 1))
        x = torch.randn(8, 3, 8, 8)

        def r1_grads(model, xs):
            xs = xs.clone().requires_grad_(True)
            out = model(xs)
            g, = torch.autograd.grad(out.sum(), xs, create_graph=True)
            (out.sum() + g.square().sum()).backward()
            return out.detach(), [p.grad.clone() for p in model.parameters()]

        one = copy.deepcopy(net)
        out1, grads1 = r1_grads(one, x)  # one BatchNorm over all 8
        sync = dist.sync_batchnorm(copy.deepcopy(net), True)
        assert type(sync[1]).__name__ == "SyncBatchNorm"
        out2, grads2 = r1_grads(sync, x[4 * rank:4 * rank + 4])
        for g in grads2:
            td.all_reduce(g)  # the ranks' gradients add up to the whole batch's
        ok = torch.allclose(out2, out1[4 * rank:4 * rank + 4], atol=1e-5)
        ok &= all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(grads1, grads2))
        ok &= torch.allclose(sync[1].running_var, one[1].running_var, atol=1e-6)
        ok &= torch.allclose(sync[1].running_mean, one[1].running_mean, atol=1e-6)
        with open(f"{OUT}/sync-{rank}.txt", "w") as f:
            f.write(str(bool(ok)))
        dist.close()
        # Leave without the interpreter's teardown: after R1's double backward through
        # torch.distributed.nn's all_reduce, torch 2.13's exit sometimes aborts ("terminate called
        # without an active exception") once everything here is done.
        import os
        os._exit(0)
    """).replace("{OUT}", str(tmp_path)))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], capture_output=True, text=True, timeout=120, env=env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert [(tmp_path / f"sync-{i}.txt").read_text() for i in (0, 1)] == ["True", "True"]
    # And a 2-rank run trains with it (its ranks' weights checked equal at every snapshot).
    torchrun(2, "--data", "digits", "--k", 10, "--threads", 1, "--quiet", "--steps", 40, "--snapshot-every", 20,
             "--set", "train.sync_bn=true", "--set", "model.g_width=16", "--set", "model.d_width=16",
             "--set", "train.eval_samples=500", "--set", "method.recluster_every=20",
             "--set", "method.cluster_samples=600", "--out", tmp_path / "run")

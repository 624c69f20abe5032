"""The recipes of docs/DESIGN.md, each a toy registered from this module without editing the
package: a method, a net family, a dataset, a metric. Each lives in one place (a built-in one is
one module file of its package, discovered by the registry, plus its test); the last test shows a
plugin file working from the command line, through $SELFCOND_PLUGINS."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import selfcond
from selfcond import data
from selfcond.config import resolve
from selfcond.data.base import DataOptions, DatasetSpec, ImageOptions, IndexedDataset, SampledDataset
from selfcond.data.images import ImageDataset
from selfcond.metrics import METRICS, metric
from selfcond.nets.base import Discriminator, Encoder, FAMILIES, Generator, NetFamily, NetOptions
from selfcond.options import opt
from selfcond.partition.base import METHODS, MethodSpec, ModesOptions, Partition
from selfcond.train import checkpoint, plan_resume, resume, start_run


# --- a method: options + partition + one registration --------------------------------------------

@dataclass
class HalvesOptions(ModesOptions):
    k: int = opt(2, min=2, help="modes: the half-planes by the first coordinate's sign, then empty")
    probe: int = opt(1000, min=1, help="samples that estimate π")


class HalvesPartition(Partition):
    """Modes by the sign of the first coordinate: a method with no learning at all."""

    def __init__(self, options: HalvesOptions, device):
        super().__init__(options.k, device)
        self.o = options

    def start(self, ctx) -> None:
        x, _ = ctx.dataset.sample(self.o.probe, ctx.generator, ctx.device)
        self.counts = torch.bincount(self._of(x), minlength=self.k).double()

    def _of(self, x):
        return (x[:, 0] > 0).long()

    def labels(self, batch):
        return self._of(batch.x)


# --- a net family: options + G, D (with features), Q + one registration ---------------------------

@dataclass
class TinyOptions(NetOptions):
    z_dim: int = opt(2, min=1)
    g_width: int = opt(16, min=1)
    d_width: int = opt(16, min=1)


class TinyG(Generator):
    def __init__(self, k, z_dim, width, out):
        super().__init__()
        self.z_dim, self.k = z_dim, k
        self.embed = nn.Embedding(k, z_dim)
        self.net = nn.Sequential(nn.Linear(z_dim, width), nn.ReLU(), nn.Linear(width, out))

    def forward(self, z, y):
        code = self.embed.weight[y] if y.dim() == 1 else y @ self.embed.weight
        return self.net(z + code)


class TinyD(Discriminator):
    def __init__(self, k, width, inp):
        super().__init__()
        self.feature_dim = width
        self.trunk = nn.Sequential(nn.Linear(inp, width), nn.LeakyReLU(0.2))
        self.uncond, self.cond = nn.Linear(width, 1), nn.Linear(width, k)

    def features(self, x):
        return self.trunk(x)

    def forward(self, x, y=None):
        h = self.features(x)
        return self.uncond(h)[:, 0] if y is None else self.cond(h).gather(1, y[:, None])[:, 0]


class TinyQ(Encoder):
    def __init__(self, dim, width, inp):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inp, width), nn.LeakyReLU(0.2), nn.Linear(width, dim))

    def forward(self, x):
        return self.net(x)


# --- a dataset: options + a Dataset + one registration --------------------------------------------

class Line(SampledDataset):
    """Three Gaussians on the x axis."""

    name, shape = "line", (2,)
    means = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    std = 0.05

    @property
    def num_classes(self):
        return 3

    def sample(self, n, generator, device="cpu"):
        y = torch.randint(3, (n,), generator=generator, device=device)
        return self.means.to(device)[y] + self.std * torch.randn(n, 2, generator=generator, device=device), y


@dataclass
class BarsOptions(ImageOptions):
    bars: int = opt(4, min=2, help="classes: a bright bar in one of this many rows")


def bars(o: BarsOptions) -> ImageDataset:
    """32 px images, each a horizontal bar in one of `bars` bands: an indexed dataset with labels."""
    n, r = 256, o.resolution
    y = torch.arange(n) % o.bars
    x = torch.zeros(n, 1, r, r, dtype=torch.uint8)
    band = r // o.bars
    for c in range(o.bars):  # per class, not per image
        x[y == c, :, c * band:(c + 1) * band] = 255
    return ImageDataset("bars", x, y, o.bars)


# --- a metric: one function + one registration ---------------------------------------------------

def toy_metric(ctx, n):
    x, _ = ctx.sample(n, ctx.generator(1))
    return {"mean_norm": float(x.norm(dim=1).mean())}


@pytest.fixture(scope="module", autouse=True)
def toys():
    """Register the toys for this module's tests, and remove them after."""
    METHODS.register("halves", MethodSpec("halves", HalvesOptions, lambda o, ds, dev: HalvesPartition(o, dev),
                                          "two modes by the sign of x (a recipe test)",
                                          preset={"method": {"k": 2}}))  # over the data kind's k
    FAMILIES.register("tiny", NetFamily(
        "tiny", "points", TinyOptions,
        build=lambda o, shape, k, needs: (TinyG(k, o.z_dim, o.g_width, shape[0]), TinyD(k, o.d_width, shape[0])),
        encoder=lambda o, shape, dim: TinyQ(dim, o.d_width, shape[0])))
    data.register(DatasetSpec("line", "points", DataOptions, load=lambda o: Line(),
                              available=lambda data_dir=None: True,
                              info=lambda data_dir=None: {"kind": "2d", "shape": [2], "classes": 3}))
    data.register(DatasetSpec("bars", "images", BarsOptions, load=bars, available=lambda data_dir=None: True,
                              info=lambda data_dir=None: {"splits": {"train": 256}, "shape": [1, 32, 32]},
                              preset={"method": {"k": 4}}))
    metric("mean_norm", ("mean_norm",), lambda ctx: ctx.dataset.shape == (2,), at_snapshot=False)(toy_metric)
    yield
    METHODS.unregister("halves")
    FAMILIES.unregister("tiny")
    data.DATASETS.unregister("line")
    data.DATASETS.unregister("bars")
    METRICS.unregister("mean_norm")


SMALL = {"train.threads": 1, "train.log_every": 10, "train.eval_samples": 1000}


def test_a_method_is_its_options_and_its_partition(tmp_path):
    cfg = resolve(overrides={"data.name": "ring", "method.name": "halves", "train.steps": 20,
                             "train.snapshot_every": 10, "model.g_width": 16, "model.d_width": 8, **SMALL})
    assert cfg.method == HalvesOptions(name="halves", k=2, probe=1000)  # its own keys, validated
    t = start_run(cfg, tmp_path)
    t.train(progress=False)
    assert t.run_dir.name == "00000-ring-halves-k2"
    assert 0.4 < float(t.partition.pi[0]) < 0.6  # the ring is symmetric
    x, y = selfcond.load(t.run_dir, device="cpu").generate(8, mode=1)
    assert (y == 1).all() and x.shape == (8, 2)
    resumed = resume(plan_resume(t.run_dir, {"train.steps": 30}))  # checkpoints and resume come free
    resumed.train(progress=False)
    assert checkpoint.read(t.run_dir)["step"] == 30
    with pytest.raises(Exception, match="method.k must be >= 2"):
        resolve(overrides={"data.name": "ring", "method.name": "halves", "method.k": 1})


@pytest.mark.parametrize("method", ["scgan", "micgan"])
def test_a_net_family_serves_every_method(tmp_path, method):
    """The family gives D's features (Self-Conditioned GAN clusters them) and an encoder (MIC-GANs)."""
    over = {"method.cluster_samples": 300, "method.k": 4}
    if method == "micgan":
        over.update({"method.init_steps": 10, "method.epoch_steps": 10, "method.q_steps": 3, "train.steps": 30})
    cfg = resolve(overrides={"data.name": "grid", "method.name": method, "model.arch": "tiny", "train.steps": 20,
                             "train.snapshot_every": 20, **SMALL, **over})
    assert isinstance(cfg.model, TinyOptions)
    t = start_run(cfg, tmp_path)
    t.train(progress=False)
    assert isinstance(t.G, TinyG) and t.partition.conditional
    assert int(t.partition.alive.sum()) >= 2


def test_a_dataset_is_its_loader_and_its_options(tmp_path):
    assert "line" in data.names() and data.info("line")["available"]
    cfg = resolve(overrides={"data.name": "line", "method.name": "cgan", "train.steps": 20, **SMALL,
                             "model.g_width": 16, "model.d_width": 8})
    t = start_run(cfg, tmp_path)
    t.train(progress=False)
    assert t.partition.k == 3 and t.run_dir.name.startswith("00000-line-cgan")
    # an indexed image dataset with labels: its preset, the kmeans table, the clustering metric
    cfg = resolve(overrides={"data.name": "bars", "data.bars": 4, "method.name": "scgan", "train.steps": 10,
                             "model.g_width": 8, "model.d_width": 8, "train.batch": 16, **SMALL})
    assert cfg.method.k == 4 and isinstance(cfg.data, BarsOptions)
    t = start_run(cfg, tmp_path)
    t.train(progress=False)
    assert isinstance(t.dataset, IndexedDataset) and t.partition.table.shape == (256,)
    assert t.evaluate(metrics=["purity"])["purity"] > 0.9  # the bars separate at once


def test_a_metric_is_one_function(tmp_path):
    t = start_run(resolve(overrides={"data.name": "ring", "method.name": "gan", "train.steps": 5, **SMALL,
                                     "model.g_width": 16, "model.d_width": 8}), tmp_path)
    t.train(progress=False)
    assert "mean_norm" not in t.last_metrics  # on demand only (at_snapshot=False)
    out = t.evaluate(metrics=["mean_norm"], n=500)
    assert out["mean_norm"] > 0
    assert "mean_norm" in selfcond.load(t.run_dir, device="cpu").evaluate(record=False)


def test_a_plugin_file_works_from_the_command_line(tmp_path):
    """One file outside selfcond adds a method: `selfcond methods` lists it and `train` runs it."""
    (tmp_path / "my_method.py").write_text(
        "from selfcond.partition.base import MethodOptions, MethodSpec, register\n"
        "from selfcond.partition.none import NoPartition\n"
        "register(MethodSpec('plain', MethodOptions, lambda o, ds, dev: NoPartition(dev), 'a plugin method'))\n")
    env = {**os.environ, "SELFCOND_PLUGINS": "my_method", "PYTHONPATH": str(tmp_path)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "selfcond", *a], capture_output=True, text=True,  # noqa: E731
                                    env=env, timeout=300)
    listed = run("methods")
    assert listed.returncode == 0 and "plain    a plugin method" in listed.stdout
    r = run("train", "--data", "ring", "--method", "plain", "--steps", "10", "--threads", "1", "--quiet",
            "--out", str(tmp_path / "runs"), "--set", "model.g_width=16", "--set", "model.d_width=8")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "runs" / "00000-ring-plain" / "checkpoint-00000010.pt").is_file()
    env["SELFCOND_PLUGINS"] = "no_such_module"
    bad = run("methods")
    assert bad.returncode == 2 and "$SELFCOND_PLUGINS names 'no_such_module'" in bad.stderr

"""Options of a run: dataclasses, presets, YAML in and out.

One table of defaults serves the CLI, the Python API and the benchmarks. A config is resolved in
layers, later ones winning: dataclass defaults -> preset for the kind of data (2D points or images)
-> preset for the method -> the user's YAML file -> command-line flags. The resolved result is what a
run saves as `config.yaml`, so `--config runs/X/config.yaml` reproduces a run.

Unknown keys and invalid values raise `UserError` with one line that names the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from selfcond.errors import UserError

# Methods and the partition each one uses (DESIGN.md: a method is a partition, not a new loop).
METHOD_PARTITION = {
    "gan": "none",
    "pacgan": "none",  # + PacGAN packing in D
    "mbd": "none",  # + minibatch discrimination in D
    "cgan": "labels",  # ground-truth modes: the class-conditional upper bound
    "random": "random",
    "scgan": "kmeans",  # Self-Conditioned GAN
    "micgan": "crp",  # MIC-GANs: Dirichlet-process mixture, Adversarial Chinese Restaurant Process
}
METHODS = tuple(METHOD_PARTITION)
TOY_DATASETS = ("ring", "grid")


@dataclass
class DataConfig:
    name: str = "digits"
    data_dir: str | None = None  # where image files live (images only)
    resolution: int = 32  # images are resized to this (images only)
    stack_n: int = 60000  # stacked-mnist: number of stacked images
    stack_seed: int = 0  # stacked-mnist: seed of the digit triples


@dataclass
class ModelConfig:
    arch: str = "auto"  # mlp (2D points) | dcgan (images); auto picks by data
    z_dim: int = 128
    g_width: int = 64
    d_width: int = 64
    g_depth: int = 4  # hidden layers of the 2D generator
    embed_dim: int = 32  # size of G's condition embedding (concat conditioning)
    maxout_pieces: int = 5  # 2D discriminator
    g_cond: str = "concat"  # concat: L2-normalised embedding concatenated to z; add: code added to z
    d_head: str = "multi"  # D's conditional head (images): multi (one logit per mode) | projection
    pack: int = 1  # PacGAN: samples packed into one D input
    mbd_kernels: int = 0  # minibatch discrimination: number of kernels B (0 = off)
    mbd_dim: int = 5  # minibatch discrimination: kernel dimension C


@dataclass
class MethodConfig:
    name: str = "scgan"
    k: int = 100  # number of modes / clusters / conditions
    recluster_every: int = 5000  # steps between refreshes of the partition
    cluster_samples: int = 25000  # real samples clustered (fixed subset)
    kmeans_iters: int = 100
    # MIC-GANs (method micgan); an epoch is `epoch_steps` GAN steps (0 = one pass over the data).
    # The schedule is the one measured in docs/RESULTS.md: a long initialization, so G is good
    # before Q learns to tell its modes apart (after 2,000 steps every round merged modes: MNIST
    # purity 0.45), then 7 rounds 1,000 steps apart: with Q learning from G's moving average the
    # purity rises over rounds 1-5 with two modes per digit, and rounds 6-7 merge those twins
    # (MNIST k_found 18 -> 12-13 at purity 0.93; Fashion-MNIST purity 0.67). Q learning from
    # images moved by up to 2 pixels (q_shift, session 10) lifts MNIST round 3 from 0.91-0.93 to 0.95.
    alpha: float = 1.0  # DP concentration: the total weight of opening a new mode
    init_steps: int = 7000  # initialization stage: D unconditional, G's conditions uniform
    epoch_steps: int = 1000
    sample_epochs: int = 7  # ACRP epochs with Gibbs sampling; training goes on after them
    q_steps: int = 500  # encoder steps per epoch
    q_lr: float = 2e-4
    q_shift: int = 2  # images: Q learns from G's images moved by up to this many pixels (0 = as drawn)
    gibbs_sweeps: int = 3
    gibbs_block: int = 0  # points sampled together: 0 = N / 16 (cluster.crp.block_size), 1 = exact Gibbs
    embed_var: float = 0.1  # initial covariance of every mode's Gaussian, and the NIW prior's


@dataclass
class TrainConfig:
    steps: int = 2000
    batch: int = 64
    lr: float = 1e-4
    r1: float = 0.0  # R1 penalty weight on real images (0 = off); MIC-GANs' code uses 10
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = torch's default
    deterministic: bool = True  # CUDA: deterministic cuDNN kernels, so a resume continues bit for bit
    ema: float = 0.999  # per-step decay of a moving average of G that samples and is scored (0 = G itself)
    snapshot_every: int = 1000  # steps between sample plots and checkpoints
    log_every: int = 100  # steps between lines in stats.jsonl
    eval_samples: int = 50000  # samples for the metrics computed at snapshots
    metrics: list[str] = field(default_factory=list)  # metrics at snapshots; empty = the data's cheap ones
    keep_checkpoints: int = 3  # newest checkpoints kept in the run directory
    nan_retry: int = 0  # on NaN/inf: roll back to the last checkpoint with half the lr, this many times


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def is_toy(self) -> bool:
        return self.data.name in TOY_DATASETS

    @property
    def partition(self) -> str:
        return METHOD_PARTITION[self.method.name]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- presets ------------------------------------------------------------------------------------
# The 2D preset follows the Self-Conditioned GAN paper's 2d_mix code; the image preset its DCGAN
# configs. Method presets only touch what the method changes.

TOY_PRESET = {
    "model": {"arch": "mlp", "z_dim": 2, "g_width": 400, "d_width": 200, "embed_dim": 32},
    "method": {"k": 50, "recluster_every": 5000, "cluster_samples": 10000},
    "train": {"batch": 100, "lr": 1e-4, "betas": [0.8, 0.999], "steps": 20000,
              "snapshot_every": 5000, "log_every": 500},
}
IMAGE_PRESET = {
    "model": {"arch": "dcgan", "z_dim": 128, "g_width": 64, "d_width": 64, "embed_dim": 256},
    "method": {"k": 100, "cluster_samples": 25000},
    "train": {"batch": 64, "lr": 1e-4, "betas": [0.0, 0.99]},
}
# Per-dataset adjustments on top of the data-kind preset. `digits` is the offline demo that
# `selfcond train` runs with no arguments: 10 modes (one row per digit in the sample grid) and a
# budget that finishes in minutes on 2 CPU cores.
DATA_PRESETS = {
    "digits": {"model": {"g_width": 32, "d_width": 32},
               "method": {"k": 10, "recluster_every": 1000},
               "train": {"steps": 3000, "snapshot_every": 1000}},
    "mnist": {"data": {"resolution": 28}, "method": {"k": 20}},
    "fashion-mnist": {"data": {"resolution": 28}, "method": {"k": 20}},
    # Stacked MNIST as in the papers: 32 px RGB, 1000 true modes, 26,000 samples counted. The
    # paper's code reclusters every 25,000 steps, so runs of up to that length keep the clusters of
    # the random D, which split all three digits; a trained D's features drop one channel's digit and
    # its clusters leave that channel to G (reverse KL 0.090 against 0.104: docs/RESULTS.md).
    "stacked-mnist": {"data": {"resolution": 32}, "method": {"recluster_every": 25000},
                      "train": {"eval_samples": 26000}},
}
METHOD_PRESETS = {
    "pacgan": {"model": {"pack": 2}},
    "mbd": {"model": {"mbd_kernels": 50, "mbd_dim": 5}},
    # 14,000 steps: the budget its default schedule (MethodConfig) was measured at.
    "micgan": {"model": {"g_cond": "add"}, "method": {"k": 20}, "train": {"r1": 10.0, "steps": 14000}},
}


def merge(base: dict, over: dict) -> dict:
    """Deep merge of nested mappings; `over` wins."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def tree_of(flat: dict[str, Any]) -> dict:
    """{"train.lr": 2e-4} -> {"train": {"lr": 2e-4}}; None values (flags not given) are skipped."""
    tree: dict = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def flat_of(tree: dict, prefix: str = "") -> dict[str, Any]:
    """The inverse of `tree_of`."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_of(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check one value against the type of its default; ints are accepted where floats are."""
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"config: {where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config: {where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config: {where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise UserError(f"config: {where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config: {where} must be a list, got {value!r}")
        return [_coerce(v, default[0], where) for v in value] if default else list(value)
    return value


def _build(cls, tree: dict, where: str):
    if not isinstance(tree, dict):
        raise UserError(f"config: {where or 'top level'} must be a mapping, got {tree!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(tree) - set(known))
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise UserError(f"config: unknown key '{name}' (known: {', '.join(known)})")
    obj = cls()
    for name, f in known.items():
        if name not in tree:
            continue
        sub = f"{where}.{name}" if where else name
        default = getattr(obj, name)
        if dataclasses.is_dataclass(default):
            setattr(obj, name, _build(type(default), tree[name], sub))
        else:
            # Optional fields (default None) keep what they are given.
            setattr(obj, name, _coerce(tree[name], default, sub))
    return obj


def resolve(user: dict | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Resolve a config from a user mapping (e.g. loaded YAML) and dotted overrides (CLI flags).

    >>> resolve(overrides={"data.name": "grid", "method.name": "scgan"}).method.k
    50
    """
    user = user or {}
    if not isinstance(user, dict):
        raise UserError(f"config: the file must hold a mapping, got {type(user).__name__}")
    merged_user = merge(user, tree_of(overrides or {}))
    # Presets depend on the data and method the user picked, so look those up first.
    data_name = (merged_user.get("data") or {}).get("name", DataConfig.name)
    method_name = (merged_user.get("method") or {}).get("name", MethodConfig.name)
    preset = TOY_PRESET if data_name in TOY_DATASETS else IMAGE_PRESET
    preset = merge(preset, DATA_PRESETS.get(data_name, {}))
    preset = merge(preset, METHOD_PRESETS.get(method_name, {}))
    cfg = _build(Config, merge(preset, merged_user), "")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Reject values that cannot work, each with one line naming the key."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UserError(f"config: {message}")

    need(cfg.method.name in METHODS,
         f"method.name must be one of {', '.join(METHODS)}, got {cfg.method.name!r}")
    need(cfg.method.k >= 1, f"method.k must be >= 1, got {cfg.method.k}")
    need(cfg.method.recluster_every >= 1, "method.recluster_every must be >= 1")
    need(cfg.method.cluster_samples >= cfg.method.k,
         f"method.cluster_samples ({cfg.method.cluster_samples}) must be >= method.k ({cfg.method.k})")
    need(cfg.method.kmeans_iters >= 1, "method.kmeans_iters must be >= 1")
    m = cfg.method
    need(m.alpha > 0, f"method.alpha must be > 0, got {m.alpha}")
    for key in ("init_steps", "epoch_steps", "sample_epochs", "q_shift"):
        need(getattr(m, key) >= 0, f"method.{key} must be >= 0, got {getattr(m, key)}")
    for key in ("q_steps", "gibbs_sweeps"):
        need(getattr(m, key) >= 1, f"method.{key} must be >= 1, got {getattr(m, key)}")
    need(m.name != "micgan" or m.init_steps < cfg.train.steps,
         f"method.init_steps ({m.init_steps}) must be below train.steps ({cfg.train.steps}): MIC-GANs "
         f"would never leave its initialization stage (about 70% of the steps works)")
    need(m.gibbs_block >= 0, f"method.gibbs_block must be >= 0 (0 = N / 16), got {m.gibbs_block}")
    need(m.q_lr > 0 and m.embed_var > 0, "method.q_lr and method.embed_var must be > 0")
    need(cfg.model.arch in ("auto", "mlp", "dcgan"), f"model.arch must be auto, mlp or dcgan, got {cfg.model.arch!r}")
    need(cfg.model.g_cond in ("concat", "add"), f"model.g_cond must be concat or add, got {cfg.model.g_cond!r}")
    need(cfg.model.d_head in ("multi", "projection"), f"model.d_head must be multi or projection, got {cfg.model.d_head!r}")
    for key in ("z_dim", "g_width", "d_width", "g_depth", "embed_dim", "maxout_pieces", "pack", "mbd_dim"):
        need(getattr(cfg.model, key) >= 1, f"model.{key} must be >= 1, got {getattr(cfg.model, key)}")
    need(cfg.model.mbd_kernels >= 0, "model.mbd_kernels must be >= 0")
    need(cfg.model.pack == 1 or cfg.partition == "none",
         "model.pack > 1 (PacGAN) only works with an unconditional method (gan, pacgan, mbd)")
    t = cfg.train
    need(t.steps >= 0, f"train.steps must be >= 0, got {t.steps}")
    need(t.batch >= 1, f"train.batch must be >= 1, got {t.batch}")
    need(t.batch % cfg.model.pack == 0, f"train.batch ({t.batch}) must be a multiple of model.pack ({cfg.model.pack})")
    need(math.isfinite(t.lr) and t.lr > 0, f"train.lr must be > 0, got {t.lr}")
    need(math.isfinite(t.r1) and t.r1 >= 0, f"train.r1 must be >= 0, got {t.r1}")
    need(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas), f"train.betas must be two numbers in [0, 1), got {t.betas}")
    need(t.snapshot_every >= 1, "train.snapshot_every must be >= 1")
    need(t.log_every >= 1, "train.log_every must be >= 1")
    need(t.eval_samples >= 1, "train.eval_samples must be >= 1")
    need(t.threads >= 0, "train.threads must be >= 0")
    need(t.nan_retry >= 0, "train.nan_retry must be >= 0")
    need(0 <= t.ema < 1, f"train.ema must be in [0, 1) (0 = sample from G itself), got {t.ema}")
    need(t.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
    need(t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"),
         f"train.device must be auto, cpu or cuda[:N], got {t.device!r}")
    need(cfg.data.resolution in (28, 32, 64) or cfg.is_toy,
         f"data.resolution must be 28, 32 or 64, got {cfg.data.resolution}")


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    return tree or {}


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def from_yaml_text(text: str) -> Config:
    return resolve(yaml.safe_load(text) or {})

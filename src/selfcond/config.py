"""The options of a run: four sections resolved in layers, validated whole, saved as config.yaml.

    data    the dataset's options (data/: each dataset module declares its own)
    model   the net family's options (nets/: mlp, dcgan, ...)
    method  the method's options (partition/: gan, scgan, micgan, ...)
    train   the training loop's options (TrainOptions below)

A config is resolved in layers, later ones winning: each options class's defaults -> the preset
for the kind of data (2D points or images) -> the dataset's preset -> the method's preset -> the
user's YAML file -> command-line flags. A preset only sets the keys the chosen dataset, family and
method have. The resolved config is what a run saves as `config.yaml` (with `version: 2`), so
`--config runs/X/config.yaml` reproduces a run. Unknown keys and invalid values raise `UserError`
with one line that names the key; configs of version 1 are migrated (migrate.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from selfcond import data, migrate
from selfcond.data.base import DataOptions
from selfcond.errors import UserError
from selfcond.nets.base import FAMILIES, NetOptions, default_family
from selfcond.options import Options, build, need, opt
from selfcond.partition.base import METHODS, MethodOptions

VERSION = 2
SECTIONS = ("data", "model", "method", "train")
MAX_SAMPLES = 1_000_000  # samples one evaluation may draw: more answers in hours, not minutes


@dataclass
class TrainOptions(Options):
    steps: int = opt(2000, min=0, help="total training steps")
    batch: int = opt(64, min=2, note="BatchNorm needs two samples", help="batch size")
    lr: float = opt(1e-4, gt=0, help="Adam learning rate of G and D")
    r1: float = opt(0.0, min=0, help="R1 penalty weight on real images (0 = off)")
    r1_every: int = opt(1, min=1, help="lazy R1: the penalty every N steps, weighted N times (StyleGAN2: 16)")
    augment: str = opt("", help="DiffAugment of D's inputs: comma-separated color, translation, cutout ('' = off)")
    amp: bool = opt(False, help="bf16 autocast of the nets' forward passes (for CUDA)")
    channels_last: bool = opt(False, help="images and convolutions in channels-last memory format (for CUDA)")
    sync_bn: bool = opt(False, help="several ranks: BatchNorm normalises over the global batch, not each rank's share")
    minutes: float = opt(0.0, min=0, help="stop after this many minutes of training, with a snapshot (0 = no limit)")
    betas: list[float] = opt([0.0, 0.99], help="Adam betas")
    seed: int = opt(0, help="seed of everything")
    device: str = opt("auto", help="auto | cpu | cuda | cuda:N")
    threads: int = opt(0, min=0, help="torch CPU threads; 0 = torch's default")
    deterministic: bool = opt(True, help="CUDA: deterministic cuDNN kernels, so a resume continues bit for bit")
    ema: float = opt(0.999, min=0, lt=1, note="0 = sample from G itself",
                     help="per-step decay of the moving average of G that samples and is scored")
    snapshot_every: int = opt(1000, min=1, help="steps between sample plots and checkpoints")
    log_every: int = opt(100, min=1, help="steps between lines in stats.jsonl")
    eval_samples: int = opt(50000, min=1, max=MAX_SAMPLES, help="samples for the metrics computed at snapshots")
    metrics: list[str] = opt([], help="metrics at snapshots; empty = the data's cheap ones")
    keep_checkpoints: int = opt(3, min=1, help="newest checkpoints kept in the run directory")
    nan_retry: int = opt(0, min=0, help="on NaN/inf: roll back to the last checkpoint with half the lr, N times")

    def check(self, cfg) -> None:
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
             f"train.betas must be two numbers in [0, 1), got {self.betas}")
        need(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
             f"train.device must be auto, cpu or cuda[:N], got {self.device!r}")
        from selfcond.train.augment import POLICIES

        bad = [p for p in self.augment.split(",") if p.strip() and p.strip() not in POLICIES]
        need(not bad, f"train.augment: unknown policy {bad[0] if bad else ''!r} (known: {', '.join(POLICIES)})")
        need(not self.augment or cfg.kind == "images", "train.augment augments images; the data are 2D points")


@dataclass
class Config:
    data: DataOptions
    model: NetOptions
    method: MethodOptions
    train: TrainOptions

    @property
    def kind(self) -> str:
        """The kind of data: "points" or "images"."""
        return data.spec(self.data.name).kind

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, **dataclasses.asdict(self)}


# The papers' defaults for each kind of data: the 2D preset follows the Self-Conditioned GAN paper's
# 2d_mix code, the image preset its DCGAN configs (each net family's defaults are in its options).
KIND_PRESETS = {
    "points": {"method": {"k": 50, "recluster_every": 5000, "cluster_samples": 10000},
               "train": {"batch": 100, "lr": 1e-4, "betas": [0.8, 0.999], "steps": 20000,
                         "snapshot_every": 5000, "log_every": 500}},
    "images": {"method": {"k": 100, "cluster_samples": 25000},
               "train": {"batch": 64, "lr": 1e-4, "betas": [0.0, 0.99]}},
}


# The seeds' own configurations, by name (`--preset NAME`; `selfcond presets` lists them). A named
# preset is a config mapping applied over the presets above and under the YAML file and flags.
NAMED_PRESETS = {
    "scgan-cifar10": ("Self-Conditioned GAN on CIFAR-10, as its code's configs/cifar/selfcondgan.yaml: "
                      "dcgan-deep, z 128, batch 64, k 100, 25,000 images clustered every 25,000 steps, no R1, no average", {
        "data": {"name": "cifar10", "resolution": 32},
        "model": {"arch": "dcgan-deep", "z_dim": 128, "g_width": 64, "d_width": 64, "embed_dim": 256},
        "method": {"name": "scgan", "k": 100, "cluster_samples": 25000, "recluster_every": 25000},
        "train": {"batch": 64, "lr": 1e-4, "betas": [0.0, 0.99], "r1": 0.0, "ema": 0.0, "steps": 200000,
                  "snapshot_every": 5000}}),
    "scgan-imagenet128": ("Self-Conditioned GAN on ImageNet or Places at 128 px (give --data DIR or a zip), as "
                          "configs/imagenet/selfcondgan.yaml: resnet2, z 256, batch 128, k 100, 50,000 images "
                          "clustered every 75,000 steps, R1 0.1, G averaged 0.999", {
        "data": {"resolution": 128},
        "model": {"arch": "resnet", "variant": "resnet2", "z_dim": 256, "g_width": 64, "d_width": 64, "embed_dim": 256},
        "method": {"name": "scgan", "k": 100, "cluster_samples": 50000, "recluster_every": 75000},
        "train": {"batch": 128, "lr": 1e-4, "betas": [0.0, 0.99], "r1": 0.1, "ema": 0.999, "steps": 500000,
                  "snapshot_every": 5000}}),
    "micgan-stylegan2-cifar": ("MIC-GANs with StyleGAN2 on CIFAR-size data (32 px): one constant input per mode, "
                               "D conditioned as a cGAN, StyleGAN2-ADA's CIFAR settings (mapping 2, lr 0.0025, "
                               "lazy R1 0.01 every 16 steps)", {
        "data": {"name": "cifar10", "resolution": 32},
        "model": {"arch": "stylegan2", "g_cond": "const", "d_head": "multi", "mapping_layers": 2, "g_width": 64,
                  "d_width": 64, "z_dim": 512, "w_dim": 512},
        "method": {"name": "micgan", "k": 20},
        "train": {"batch": 64, "lr": 0.0025, "betas": [0.0, 0.99], "r1": 0.01, "r1_every": 16, "ema": 0.999,
                  "steps": 200000, "snapshot_every": 5000}}),
}


def named_preset(name: str) -> dict:
    """The config mapping of a named preset (a UserError names the known ones)."""
    if name not in NAMED_PRESETS:
        raise UserError(f"unknown preset {name!r} (known: {', '.join(NAMED_PRESETS)})")
    return NAMED_PRESETS[name][1]


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
    """{"train.lr": 2e-4} -> {"train": {"lr": 2e-4}} (a null stays null: `--set k=null` is refused
    where a number is needed, not ignored)."""
    tree: dict = {}
    for dotted, value in flat.items():
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


def _only(preset: dict, classes: dict[str, type[Options]]) -> dict:
    """The part of a preset that the chosen classes have keys for."""
    return {s: {k: v for k, v in part.items() if k in classes[s].keys()} for s, part in preset.items()}


def upgrade(user: Any) -> tuple[dict, frozenset]:
    """A user mapping in today's schema (older versions migrated), and the old keys that may be ignored."""
    if not isinstance(user, dict):
        raise UserError(f"config: the file must hold a mapping, got {type(user).__name__}")
    if migrate.is_v1(user) or user.get("version") == 1:
        return migrate.config_v1({k: v for k, v in user.items() if k != "version"})
    version = user.get("version", VERSION)
    need(version == VERSION, f"version {version!r} is not a config version this selfcond reads (1 or {VERSION})")
    return user, frozenset()


def resolve(user: dict | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Resolve a config from a user mapping (e.g. loaded YAML) and dotted overrides (CLI flags).

    >>> resolve(overrides={"data.name": "grid", "method.name": "scgan"}).method.k
    50
    """
    user, drop = upgrade(user or {})
    tree = merge({k: v for k, v in user.items() if k != "version"}, tree_of(overrides or {}))
    for key in flat_of(tree):
        need(key not in migrate.MOVED or key in drop,
             f"'{key}' is '{migrate.MOVED.get(key)}' since config version 2")
    unknown = sorted(set(tree) - set(SECTIONS))
    need(not unknown, f"unknown key '{unknown[0] if unknown else ''}' (known: version, {', '.join(SECTIONS)})")
    for s in SECTIONS:
        need(isinstance(tree.get(s, {}), dict), f"{s} must be a mapping, got {tree.get(s)!r}")
    # The dataset, method and family decide which keys exist, so they are looked up first.
    data_name = tree.get("data", {}).get("name", DataOptions.name)
    method_name = tree.get("method", {}).get("name", MethodOptions.name)
    need(isinstance(data_name, str), f"data.name must be a string, got {data_name!r}")
    need(isinstance(method_name, str) and method_name in METHODS,
         f"method.name must be one of {', '.join(sorted(METHODS.names()))}, got {method_name!r}")
    dataset, method = data.spec(data_name), METHODS.get(method_name)
    arch = tree.get("model", {}).get("arch", NetOptions.arch)
    need(arch == "auto" or (isinstance(arch, str) and arch in FAMILIES),
         f"model.arch must be auto or one of {', '.join(sorted(FAMILIES.names()))}, got {arch!r}")
    family = default_family(dataset.kind) if arch == "auto" else FAMILIES.get(arch)
    need(family.kind == dataset.kind, f"model.arch {family.name} is for {family.kind} data, and dataset "
                                      f"{data_name!r} holds {dataset.kind}")
    classes = {"data": dataset.options, "model": family.options, "method": method.options, "train": TrainOptions}
    preset = {}
    for layer in (KIND_PRESETS[dataset.kind], dataset.preset, method.preset):
        preset = merge(preset, _only(layer, classes))
    tree = merge(merge(preset, tree), {"data": {"name": data_name}, "model": {"arch": family.name},
                                       "method": {"name": method_name}})
    whose = {"data": f"dataset {data_name}", "model": f"model.arch {family.name}",
             "method": f"method {method_name}", "train": ""}
    cfg = Config(**{s: build(classes[s], tree.get(s, {}), s, whose[s], drop) for s in SECTIONS})
    for s in SECTIONS:
        getattr(cfg, s).check(cfg)
    return cfg


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}" + (" is a directory" if path.is_dir() else ""))
    try:
        tree = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not text (not UTF-8)") from None
    return tree if tree is not None else {}


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def options_of(cfg: Config) -> dict[str, list[str]]:
    """The keys of each section of a resolved config."""
    return {s: [f.name for f in fields(getattr(cfg, s))] for s in SECTIONS}


def parse_sets(pairs) -> dict:
    """`--set train.lr=2e-4` -> {"train.lr": 0.0002}; values parsed as YAML scalars."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"--set {key.strip()}: {value!r} is not a value YAML can read") from None
    return out

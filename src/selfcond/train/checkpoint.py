"""Checkpoints: writing them atomically, and the one path that reads them.

A checkpoint is a plain dict of tensors and numbers (loadable with `weights_only=True`):
version, config (the resolved config as a mapping), step, last_refresh, seconds, data_shape, G,
D, G_ema, opt_g, opt_d, partition, rng. `load` checks its structure, migrates older versions and
checks every weight's shape against the nets its config builds, before anything is built from
it: generate, interpolate, evaluate, report and resume all read checkpoints through it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from selfcond import config as cfgmod
from selfcond.atomic import atomic_write
from selfcond.errors import UserError
from selfcond.nets.base import FAMILIES
from selfcond.partition.base import ModesOptions

VERSION = 2
KEYS = ("config", "step", "G", "D", "opt_g", "opt_d", "partition", "rng")


def save(run_dir: Path, state: dict, step: int, keep: int = 3) -> Path:
    """Write `checkpoint-<step>.pt` atomically, point `latest` at it, keep the newest `keep`."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path = run_dir / f"checkpoint-{step:08d}.pt"
    atomic_write(path, buf.getvalue())
    atomic_write(run_dir / "latest", path.name + "\n")
    for old in sorted(run_dir.glob("checkpoint-*.pt"))[:-keep]:
        old.unlink()
    return path


def locate(path: str | Path) -> Path:
    """The checkpoint file of a run directory (the one `latest` names), or `path` itself."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no run directory or checkpoint at {path}")
    if path.is_dir():
        pointer = path / "latest"
        if not pointer.is_file():
            raise UserError(f"no checkpoint in run directory {path} (no 'latest' file)")
        path = path / pointer.read_text().strip()
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return path


def read(path: str | Path, map_location="cpu") -> dict:
    """The raw dict of a checkpoint file or run directory; a damaged file is a UserError."""
    path = locate(path)
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols in files it then refuses
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, corrupt or not a checkpoint: say which, never a traceback
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} holds a {type(state).__name__}, not a selfcond checkpoint")
    return state


def migrate(state: dict) -> dict:
    """A checkpoint of an earlier version as today's (a new dict; the tensors are shared). Its
    config mapping stays as written (`config.resolve` migrates configs itself), but for behaviour
    added since it was written, which it keeps: a MIC-GANs run whose config has no
    `method.merge_from` was started before merges existed (a checkpoint's config holds every key)
    and continues without them; one with no `method.smooth_sweeps`, before smoothing, without it."""
    state = _micgan_keys_added_since(state)
    version = state.get("version")
    if version == VERSION:
        return state
    if version != 1:
        raise UserError(f"checkpoint version {version!r} is not supported (this selfcond reads 1 and {VERSION})")
    state = dict(state)
    method = (state["config"].get("method") or {}).get("name", "scgan")
    state["partition"] = {"conditional": method not in ("gan", "pacgan", "mbd"), **state["partition"]}
    # Version 1 did not store the data's shape: 2D points, or images of the configured resolution
    # with as many channels as G's last convolution draws.
    res = (state["config"].get("data") or {}).get("resolution", 32)
    convs = [v for v in state["G"].values() if v.dim() == 4]
    state["data_shape"] = [convs[-1].shape[0], res, res] if convs else [2]
    state["version"] = VERSION
    return state


# MIC-GANs keys added since the first checkpoints, with the value that does what runs did before.
_MICGAN_BEFORE = {"merge_from": 0, "smooth_sweeps": 0, "scale_prior": False, "merge_on": "smoothed",
                  "merge_resolution": 1.0}


def _micgan_keys_added_since(state: dict) -> dict:
    method = state["config"].get("method") if isinstance(state.get("config"), dict) else None
    if not isinstance(method, dict) or method.get("name") != "micgan":
        return state
    missing = {k: v for k, v in _MICGAN_BEFORE.items() if k not in method}
    if not missing:
        return state
    return {**state, "config": {**state["config"], "method": {**method, **missing}}}


def _check_structure(state: dict, path: Path) -> None:
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing)}: not a selfcond checkpoint, or damaged")
    nets = {k: state[k] for k in ("G", "D", "G_ema") if state.get(k) is not None}
    bad = [k for k, v in nets.items() if not (isinstance(v, dict) and all(isinstance(t, torch.Tensor)
                                                                             for t in v.values()))]
    part = state["partition"]
    if bad or not isinstance(state["config"], dict) or not isinstance(part, dict) \
            or not isinstance(part.get("counts"), torch.Tensor) or part["counts"].dim() != 1:
        what = bad[0] if bad else "config" if not isinstance(state["config"], dict) else "partition"
        raise UserError(f"checkpoint {path}: {what} is not what selfcond writes; the file is damaged")


def _check_shapes(state: dict, cfg: cfgmod.Config, path: Path) -> None:
    """Every weight of G, D and G's average against the nets the config builds (on the meta
    device: no memory, no random numbers)."""
    k = state["partition"]["counts"].shape[0]
    if isinstance(cfg.method, ModesOptions) and cfg.method.k != k:
        raise UserError(f"checkpoint {path} has {k} modes but its config says method.k = {cfg.method.k} "
                        "(was config.yaml edited?)")
    family = FAMILIES.get(cfg.model.arch)
    with torch.device("meta"):
        g, d = family.build(cfg.model, tuple(state["data_shape"]), k, cfg.method.d_needs())
    for name, net in (("G", g), ("D", d), ("G_ema", g)):
        if state.get(name) is None:
            continue
        want = {key: tuple(t.shape) for key, t in net.state_dict().items()}
        have = {key: tuple(t.shape) for key, t in state[name].items()}
        if want != have:
            diff = sorted(set(want) ^ set(have)) or [key for key in want if want[key] != have[key]]
            key = diff[0]
            raise UserError(f"checkpoint {path} does not match its config: {name} weight {key!r} is "
                            f"{have.get(key, 'missing')} in the checkpoint, {want.get(key, 'absent')} by the "
                            "config (was config.yaml edited, or model options changed?)")


def load(path: str | Path, overrides: dict | None = None, map_location="cpu") -> tuple[dict, cfgmod.Config]:
    """(checkpoint, the config it trains under with `overrides` on top), checked and migrated:
    a damaged or mismatched checkpoint is one UserError naming the file and the problem."""
    path = locate(path)
    state = read(path, map_location)
    _check_structure(state, path)
    state = migrate(state)
    try:
        cfg = cfgmod.resolve(state["config"], overrides)
    except UserError as e:
        raise UserError(f"checkpoint {path}: {e}") from None
    _check_shapes(state, cfg, path)
    return state, cfg


def state_of(t) -> dict:
    """A trainer's state as a checkpoint: plain tensors and numbers (weights_only-safe)."""
    rng = {"generator": t.generator.get_state(), "torch": torch.get_rng_state(), "device": t.device.type}
    if t.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(t.device)
    if t.world.size > 1:  # every rank's own stream, gathered at this snapshot (else they are reseeded)
        rng["world"] = t.world.size
        if t._rank_states is not None and t._rank_states[0] == t.step:
            rng["ranks"] = t._rank_states[1]
    return {"version": VERSION, "config": t.cfg.to_dict(), "step": t.step, "last_refresh": t.last_refresh,
            "seconds": t.seconds, "data_shape": list(t.dataset.shape), "G": t.G.state_dict(), "D": t.D.state_dict(),
            "G_ema": None if t.G_ema is None else t.G_ema.state_dict(),
            "opt_g": t.opt_g.state_dict(), "opt_d": t.opt_d.state_dict(),
            "partition": t.partition.state_dict(), "rng": rng, "data": t.dataset.state_dict()}


def restore(t, state: dict) -> None:
    """Load a checkpoint's state into a trainer built from its config."""
    from selfcond.train.loop import MOVED, RANKS, stream_seed

    state = migrate(state)
    t.G.load_state_dict(state["G"])
    t.D.load_state_dict(state["D"])
    if t.G_ema is not None:  # a run saved without an average starts one from G
        t.G_ema.load_state_dict(state.get("G_ema") or state["G"])
    t.opt_g.load_state_dict(state["opt_g"])
    t.opt_d.load_state_dict(state["opt_d"])
    t.partition.load_state_dict(state["partition"])
    t.dataset.load_state_dict(state.get("data") or {})  # a stream's position; older checkpoints: none
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    # A CPU generator's state does not fit a CUDA one (nor back): a run moved to another kind of
    # device continues with a generator seeded from (seed, step), reproducible but not the stream
    # it would have drawn at home. Older checkpoints (no "device") were CPU or CUDA by size.
    saved = rng.get("device") or ("cpu" if rng["generator"].numel() > 16 else "cuda")
    if saved == t.device.type:
        t.generator.set_state(rng["generator"])
        if "cuda" in rng and t.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], t.device)
    else:
        t.generator.manual_seed(stream_seed(t.cfg.train.seed, MOVED + state["step"]))
    # Several ranks: each continues its own stream when the checkpoint holds it (the same world
    # size, the same kind of device); else each starts a stream seeded from (seed, world, step,
    # rank): a correct continuation, not the one the saved run would have drawn.
    if t.world.size > 1:
        ranks = rng.get("ranks") or []
        if len(ranks) == t.world.size and saved == t.device.type:
            t.rank_gen.set_state(ranks[t.world.rank])
        else:
            t.rank_gen.manual_seed(stream_seed(t.cfg.train.seed, RANKS + t.world.size * (1 + state["step"]) * 4096
                                               + t.world.rank))
    t.step, t.seconds, t.started = state["step"], state["seconds"], True
    t.last_refresh = state.get("last_refresh", 0)

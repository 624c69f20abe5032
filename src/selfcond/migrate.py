"""What runs written by earlier versions of selfcond need to load today.

Config version 1 (selfcond 0.1, checkpoint version 1, up to commit 1ca0c8a): four flat sections
that held every key of every method and net family, used or not. Version 2 keeps in each section
the keys of the chosen method, net family and dataset, moved PacGAN's and minibatch
discrimination's keys from `model` to `method`, and writes `version: 2` at the top.
"""

from __future__ import annotations

from selfcond.errors import UserError

# Every key of config version 1, as its config.yaml dumps held them.
V1_KEYS = frozenset({
    "data.data_dir", "data.name", "data.resolution", "data.stack_n", "data.stack_seed",
    "method.alpha", "method.cluster_samples", "method.embed_var", "method.epoch_steps",
    "method.gibbs_block", "method.gibbs_sweeps", "method.init_steps", "method.k", "method.kmeans_iters",
    "method.name", "method.q_lr", "method.q_shift", "method.q_steps", "method.recluster_every",
    "method.sample_epochs", "model.arch", "model.d_head", "model.d_width", "model.embed_dim",
    "model.g_cond", "model.g_depth", "model.g_width", "model.maxout_pieces", "model.mbd_dim",
    "model.mbd_kernels", "model.pack", "model.z_dim", "train.batch", "train.betas",
    "train.deterministic", "train.device", "train.ema", "train.eval_samples", "train.keep_checkpoints",
    "train.log_every", "train.lr", "train.metrics", "train.nan_retry", "train.r1", "train.seed",
    "train.snapshot_every", "train.steps", "train.threads"})
MOVED = {"model.pack": "method.pack", "model.mbd_kernels": "method.mbd_kernels", "model.mbd_dim": "method.mbd_dim"}
UNCONDITIONAL = ("gan", "pacgan", "mbd")


def is_v1(tree: dict) -> bool:
    """A config mapping without a version written by config version 1: they all hold model.pack."""
    return "version" not in tree and isinstance(tree.get("model"), dict) and "pack" in tree["model"]


def config_v1(tree: dict) -> tuple[dict, frozenset]:
    """A version-1 config mapping as version 2, and the version-1 keys that the chosen method,
    family and dataset may ignore (version 1 kept them all; they did nothing)."""
    sections = {s: dict(v) if isinstance(v, dict) else v for s, v in tree.items()}
    model, method = sections.get("model", {}), sections.setdefault("method", {})
    pack, kernels = model.pop("pack", 1), model.pop("mbd_kernels", 0)
    dim = model.pop("mbd_dim", 5)
    name = method.get("name", "scgan")
    if name not in UNCONDITIONAL and (pack != 1 or kernels):
        raise UserError("config: model.pack > 1 (PacGAN) or model.mbd_kernels (minibatch discrimination) "
                        f"only works with an unconditional method (gan, pacgan, mbd), not {name}")
    if name in UNCONDITIONAL:  # v1's gan with model.pack = 2 was PacGAN, and so on
        if pack != 1 and kernels:
            raise UserError("config version 1 combines model.pack and model.mbd_kernels, which no method "
                            "of version 2 does: keep one of them")
        method["name"] = "pacgan" if pack != 1 else "mbd" if kernels else "gan"
        if pack != 1:
            method["pack"] = pack
        if kernels:
            method.update(mbd_kernels=kernels, mbd_dim=dim)
    sections["version"] = 2
    return sections, V1_KEYS - {"method.name"}

"""Net families by name: `build(cfg, dataset)` -> (G, D)."""

from __future__ import annotations

import contextlib

from selfcond.errors import UserError
from selfcond.nets.dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator
from selfcond.nets.mlp import MLPDiscriminator, MLPEncoder, MLPGenerator


@contextlib.contextmanager
def eval_mode(net):
    """`net` in eval mode inside the block (BatchNorm uses, and keeps, its running statistics),
    then back in the mode it was in."""
    was = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was)


def arch_for(cfg, dataset) -> str:
    if cfg.model.arch != "auto":
        return cfg.model.arch
    return "mlp" if getattr(dataset, "is_toy", False) else "dcgan"


def build(cfg, dataset, k: int):
    """The generator and discriminator for `cfg` and the data's shape, with k conditions."""
    m = cfg.model
    arch = arch_for(cfg, dataset)
    if arch == "mlp":
        if not getattr(dataset, "is_toy", False):
            raise UserError("model.arch mlp only works on 2D point data (ring, grid)")
        g = MLPGenerator(k, z_dim=m.z_dim, embed_dim=m.embed_dim, width=m.g_width, depth=m.g_depth,
                         cond=m.g_cond)
        d = MLPDiscriminator(k, width=m.d_width, pieces=m.maxout_pieces, pack=m.pack,
                             mbd_kernels=m.mbd_kernels, mbd_dim=m.mbd_dim)
        return g, d
    if arch == "dcgan":
        if getattr(dataset, "is_toy", False):
            raise UserError("model.arch dcgan needs image data, not 2D points")
        if m.pack != 1 or m.mbd_kernels:
            raise UserError("pacgan and mbd are only implemented for the 2D nets so far")
        channels, res = dataset.shape[0], dataset.shape[1]
        g = DCGANGenerator(k, z_dim=m.z_dim, width=m.g_width, resolution=res, channels=channels,
                           embed_dim=m.embed_dim, cond=m.g_cond)
        d = DCGANDiscriminator(k, width=m.d_width, resolution=res, channels=channels, head=m.d_head)
        return g, d
    raise UserError(f"model.arch {arch!r} is not available for dataset {cfg.data.name!r}")


def build_encoder(cfg, dataset, dim: int):
    """MIC-GANs' encoder Q for the data: D's trunk shape without BatchNorm -> (n, dim) embeddings."""
    if arch_for(cfg, dataset) == "mlp":
        return MLPEncoder(dim, width=cfg.model.d_width)
    return DCGANEncoder(dim, width=cfg.model.d_width, resolution=dataset.shape[1], channels=dataset.shape[0])

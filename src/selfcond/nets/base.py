"""The net contract and the net-family registry.

A net family (mlp for 2D points, dcgan for images, ...) is one module that registers a `NetFamily`:
its options dataclass, the kind of data it handles, and builders for the generator G, the
discriminator D (with `features`, what Self-Conditioned GAN clusters) and the encoder Q
(MIC-GANs). Shapes:

    G(z (n, z_dim), y (n,) int64 modes, or (n, k) float mixing weights) -> x (n, *shape)
    D(x (n, *shape), y (n,) or None) -> logits (n / pack,);  D.features(x) -> (n / pack, feature_dim)
    Q(x (n, *shape)) -> embeddings (n, dim)
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from selfcond.options import Options, need, opt
from selfcond.registry import Registry


class Generator(nn.Module, ABC):
    """z (n, z_dim) and modes y -> samples (n, *shape): images in [-1, 1] (StyleGAN2 leaves them
    unbounded, as the original; pictures and uint8 features clamp them). Attributes: z_dim, k;
    chunk: images per forward pass when many are generated at once (bounds memory)."""

    chunk: int = 10000

    z_dim: int
    k: int

    @abstractmethod
    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


class Discriminator(nn.Module, ABC):
    """Samples (n, *shape) -> logits; an unconditional head (y None) and a conditional one."""

    feature_dim: int
    chunk: int = 5000  # images per forward pass when a whole set is featurised (bounds memory)

    @abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The features the heads read, (n / pack, feature_dim): what the kmeans partition clusters."""

    @abstractmethod
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor: ...


class Encoder(nn.Module, ABC):
    """Samples (n, *shape) -> embeddings (n, dim): MIC-GANs' Q."""

    chunk: int = 5000  # images per forward pass when a whole set is embedded (bounds memory)

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


def activation_chunk(elements: int, budget: int = 1 << 27) -> int:
    """Images per forward pass for a net whose largest activation holds `elements` values per image:
    a chunk keeps that activation within `budget` floats (512 MB), between 8 and 5,000 images."""
    return max(8, min(5000, budget // max(1, elements)))


def check_image_net(cfg, arch: str, resolutions, detail: str = "") -> None:
    """What every image family refuses: a resolution it has no shape for, and a method that needs
    packing or minibatch discrimination in D (only the 2D nets have them). `detail`: e.g. a variant."""
    r = cfg.data.resolution
    need(r in resolutions, f"data.resolution must be one of {', '.join(map(str, resolutions))} for model.arch "
                           f"{arch}{detail}, got {r}")
    need(cfg.method.d_needs() == DiscriminatorNeeds(),
         f"method {cfg.method.name} (packing or minibatch discrimination in D) is only implemented "
         "for the 2D nets (model.arch mlp) so far")


@dataclass(frozen=True)
class DiscriminatorNeeds:
    """What a method asks of D beyond its heads: PacGAN packing, minibatch discrimination."""

    pack: int = 1  # samples packed into one D input
    mbd_kernels: int = 0  # minibatch discrimination kernels (0 = off)
    mbd_dim: int = 5


@dataclass
class NetOptions(Options):
    """Options every family has; a family's own dataclass adds its keys and sets its defaults."""

    arch: str = opt("auto", help="net family; auto picks the default family of the data's kind")
    z_dim: int = opt(128, min=1, help="size of G's noise input")
    g_width: int = opt(64, min=1, help="G's width")
    d_width: int = opt(64, min=1, help="D's width (and Q's)")
    embed_dim: int = opt(32, min=1, help="size of G's mode embedding (g_cond concat)")
    g_cond: str = opt("concat", choices=("concat", "add"),
                      help="concat: L2-normalised embedding concatenated to z; add: a code added to z")


@dataclass(frozen=True)
class NetFamily:
    """A family as the registry knows it.

    build(options, shape, k, needs) -> (G, D) with k conditions; encoder(options, shape, dim) -> Q.
    kind: the data it handles ("points" or "images"); default: `model.arch: auto` picks it."""

    name: str
    kind: str
    options: type[NetOptions]
    build: Callable[[NetOptions, tuple, int, DiscriminatorNeeds], tuple[Generator, Discriminator]]
    encoder: Callable[[NetOptions, tuple, int], Encoder]
    default: bool = False


FAMILIES: Registry[NetFamily] = Registry("net family", "selfcond.nets")


def register(family: NetFamily) -> NetFamily:
    return FAMILIES.register(family.name, family)


def default_family(kind: str) -> NetFamily:
    """The family `model.arch: auto` picks for data of `kind`."""
    return next(f for f in FAMILIES if f.kind == kind and f.default)


@contextlib.contextmanager
def eval_mode(net: nn.Module):
    """`net` in eval mode inside the block (BatchNorm uses, and keeps, its running statistics),
    then back in the mode it was in."""
    was = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was)

"""Net families by name (nets/base.py has the contract): `mlp` (2D points), `dcgan` (28-64 px)."""

from selfcond.nets.base import (FAMILIES, Discriminator, DiscriminatorNeeds, Encoder, Generator, NetFamily,
                                NetOptions, default_family, eval_mode, register)

__all__ = ["FAMILIES", "Discriminator", "DiscriminatorNeeds", "Encoder", "Generator", "NetFamily", "NetOptions",
           "default_family", "eval_mode", "register"]

"""The non-saturating GAN loss (Goodfellow et al. 2014), on D's logits."""

import torch
import torch.nn.functional as F


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), averaged."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)), averaged (non-saturating)."""
    return F.softplus(-fake_logits).mean()

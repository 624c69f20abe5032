"""selfcond: unsupervised conditional image generation (Self-Conditioned GAN, MIC-GANs)."""

__version__ = "0.2.0"


def load(run, device: str = "auto", checkpoint=None):
    """A trained run, ready to generate, interpolate and evaluate (see selfcond.api.Model)."""
    from selfcond.api import load as _load

    return _load(run, device=device, checkpoint_file=checkpoint)

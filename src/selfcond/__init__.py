"""selfcond: unsupervised conditional image generation (Self-Conditioned GAN, MIC-GANs)."""

__version__ = "0.1.0"

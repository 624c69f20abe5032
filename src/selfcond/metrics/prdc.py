"""KID, precision/recall and density/coverage of a run's samples, on the data's own classifier
(`prdc_cls`) and on Inception when a local file is configured (`prdc`, metrics/inception.py). The
math is metrics/distances.py; the features metrics/features.py."""

from __future__ import annotations

from selfcond.metrics.base import has_labels, metric
from selfcond.metrics.distances import kid, prdc
from selfcond.metrics.features import classifier_extractor, fake_features, real_features
from selfcond.metrics.inception import _applies as _has_inception
from selfcond.metrics.inception import inception_extractor

K = 3  # nearest neighbours of precision/recall, as Kynkäänniemi et al. and stylegan2-ada
PR_SAMPLES = 10000  # precision/recall need pairwise distances: at most this many per side


def _scores(ctx, extractor, n: int, suffix: str) -> dict:
    fake, real = fake_features(ctx, extractor, n), real_features(ctx, extractor, n)
    m = min(n, PR_SAMPLES)
    pr = prdc(fake[:m], real[:m], K)
    return {f"kid{suffix}": kid(fake, real), **{f"{key}{suffix}": v for key, v in pr.items()}}


@metric("prdc_cls", ("kid_cls", "precision_cls", "recall_cls", "density_cls", "coverage_cls"),
        lambda ctx: has_labels(ctx) and ctx.data.name != "stacked-mnist", at_snapshot=False)
def _prdc_cls(ctx, n: int) -> dict:
    return _scores(ctx, classifier_extractor(ctx), n, "_cls")


@metric("prdc", ("kid", "precision", "recall", "density", "coverage"), _has_inception, at_snapshot=False)
def _prdc_inception(ctx, n: int) -> dict:
    return _scores(ctx, inception_extractor(ctx), n, "")

import json

import pytest
import torch

from selfcond.data.images import digits
from selfcond.metrics import classifier
from selfcond.metrics.classifier import Recipe, cached_classifier, predict


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFCOND_CACHE", str(tmp_path))
    monkeypatch.setattr(classifier, "_LOADED", {})
    return tmp_path


QUICK = Recipe(epochs=8, batch=64, lr=3e-3, min_steps=0)


def test_classifier_learns_digits_and_is_cached(cache, monkeypatch):
    ds = digits(28)
    model, info = cached_classifier(ds, recipe=QUICK, progress=False)
    assert info["accuracy"] > 0.85 and info["n_test"] == 179 and info["n_train"] == 1797 - 179
    files = list((cache / "classifiers").glob("digits-28px-*.pt"))
    assert len(files) == 1
    state = torch.load(files[0], weights_only=True)  # plain tensors and a JSON string
    assert json.loads(state["info"])["accuracy"] == info["accuracy"]

    # A new process (empty memory cache) loads from disk instead of training.
    monkeypatch.setattr(classifier, "_LOADED", {})
    monkeypatch.setattr(classifier, "train_classifier", lambda *a, **k: pytest.fail("retrained"))
    again, info2 = cached_classifier(ds, recipe=QUICK, progress=False)
    x = ds.images(torch.arange(200))
    assert torch.equal(predict(model, x), predict(again, x)) and info2["accuracy"] == info["accuracy"]
    assert predict(again, x, features=True).shape == (200, 128)


def test_other_settings_or_data_get_their_own_entry_and_damage_is_retrained(cache, monkeypatch):
    ds = digits(28)
    tiny = Recipe(epochs=1, batch=256, min_steps=0)
    cached_classifier(ds, recipe=tiny, progress=False)
    cached_classifier(ds, recipe=Recipe(epochs=1, batch=256, seed=1, min_steps=0), progress=False)
    sub = type(ds)("digits", ds.data[:500].clone(), ds.labels[:500].clone(), 10)
    cached_classifier(sub, recipe=tiny, progress=False)
    files = sorted((cache / "classifiers").glob("*.pt"))
    assert len(files) == 3
    for f in files:
        f.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(classifier, "_LOADED", {})
    _, info = cached_classifier(ds, recipe=tiny, progress=False)  # retrains instead of crashing
    assert 0 <= info["accuracy"] <= 1
    assert torch.load(info["path"], weights_only=True)["model"]


def test_unlabeled_data_is_refused(cache):
    from selfcond.errors import UserError

    ds = digits(28)
    ds.labels = None
    with pytest.raises(UserError, match="no labels"):
        cached_classifier(ds, recipe=Recipe(epochs=1), progress=False)

import pytest
import torch
from torch import nn

from selfcond.config import resolve
from selfcond.errors import UserError
from selfcond.metrics import METRICS, evaluate, select
from selfcond.train import Trainer


def tiny(**over):
    return Trainer(resolve(overrides={"data.name": "digits", "method.k": 4, "model.g_width": 8,
                                      "model.d_width": 8, "train.steps": 0, "train.threads": 1, **over}))


def ctx(trainer):
    return trainer.eval_context()


def test_groups_apply_by_data_and_names_resolve_to_groups():
    t2d = ctx(Trainer(resolve(overrides={"data.name": "ring", "method.name": "gan", "train.threads": 1})))
    assert select(t2d) == ["modes2d"] and select(t2d, ["hq"]) == ["modes2d"]
    trainer = tiny()
    trainer.start()  # the k-means table exists after the start
    t = ctx(trainer)
    assert select(t, snapshot=True) == ["clusters"] and "fid_cls" in select(t)
    assert select(t, ["purity", "nmi", "clusters"]) == ["clusters"]
    with pytest.raises(UserError, match="unknown metric 'nope'"):
        select(t, ["nope"])
    with pytest.raises(UserError, match="does not apply"):
        select(t, ["hq"])
    assert set(evaluate(t, ["purity"], 100)) == set(METRICS.get("clusters").keys)


class Pool(nn.Module):
    """NVIDIA's inception-2015-12-05.pt call signature: uint8 (n, 3, H, W) in, features with
    return_features=True."""

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        assert img.dtype == torch.uint8 and img.shape[1] == 3
        feats = nn.functional.adaptive_avg_pool2d(img.float(), 2).flatten(1) / 255
        return feats if return_features else feats.sum(1, keepdim=True)


def test_fid_with_a_local_torchscript_extractor(tmp_path, monkeypatch):
    t = ctx(tiny())
    assert "fid" not in select(t)
    path = tmp_path / "inception.pt"
    torch.jit.save(torch.jit.script(Pool()), str(path))
    monkeypatch.setenv("SELFCOND_INCEPTION", str(path))
    out = evaluate(t, ["fid"], n=64)
    assert out["fid"] > 0 and out["fid_protocol"].startswith("nvidia")  # an untrained G is far from the digits
    monkeypatch.setenv("SELFCOND_INCEPTION", str(tmp_path / "missing.pt"))
    with pytest.raises(UserError, match="not a file"):
        select(t, ["fid"])

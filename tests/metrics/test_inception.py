"""The two standard Inception files, as a stand-in of each: NVIDIA's TorchScript call signature and
pytorch-fid's state dict of the FID Inception-v3; real-feature caching."""

import pytest
import torch
from torch import nn

from selfcond.errors import UserError
from selfcond.metrics import inception
from selfcond.metrics.pt_inception import FIDInceptionV3


class Nvidia(nn.Module):
    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        assert img.dtype == torch.uint8 and img.dim() == 4 and img.shape[1] == 3
        return nn.functional.adaptive_avg_pool2d(img.float(), 2).flatten(1)


class NotNvidia(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_nvidia_protocol_feeds_uint8_rgb_at_native_size(tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(Nvidia()), str(path))
    model, protocol, digest = inception.load(path)
    assert protocol == inception.NVIDIA and len(digest) == 12
    x = torch.linspace(-1, 1, 2 * 28 * 28).view(2, 1, 28, 28)  # grey, as MNIST
    f = inception.features(model, x, protocol)
    assert f.shape == (2, 12)
    # stylegan2-ada's conversion: (x * 127.5 + 128).clamp(0, 255) to uint8, channel repeated
    want = nn.functional.adaptive_avg_pool2d(((x * 127.5 + 128).clamp(0, 255).to(torch.uint8).float()
                                              ).repeat(1, 3, 1, 1), 2).flatten(1)
    assert torch.equal(f.float(), want)


def test_a_torchscript_without_return_features_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(NotNvidia()), str(path))
    with pytest.raises(UserError, match="not NVIDIA's inception-2015-12-05.pt"):
        inception.load(path)


def test_pytorch_fid_state_dict_loads_without_torchvision(tmp_path):
    net = FIDInceptionV3()
    assert sum(p.numel() for p in net.parameters()) == 23_850_960  # torchvision's Inception3, 1008 classes, no aux
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    model, protocol, _ = inception.load(path)
    assert protocol == inception.PYTORCH_FID
    f = inception.features(model, torch.zeros(2, 3, 32, 32), protocol)
    assert f.shape == (2, 2048)
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="not pytorch-fid's pt_inception state dict"):
        inception.load(tmp_path / "wrong.pth")
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(UserError, match="neither NVIDIA's TorchScript"):
        inception.load(tmp_path / "junk.bin")


def test_real_features_are_cached_on_disk(tmp_path, monkeypatch):
    from selfcond.config import resolve
    from selfcond.metrics import features
    from selfcond.train import Trainer

    monkeypatch.setenv("SELFCOND_CACHE", str(tmp_path))
    t = Trainer(resolve(overrides={"method.k": 4, "model.g_width": 8, "model.d_width": 8, "train.threads": 1}))
    calls = []
    ext = features.Extractor("toy", "abc", "test", lambda x: calls.append(len(x)) or x.flatten(1)[:, :5])
    a = features.real_features(t.eval_context(), ext, 300)
    b = features.real_features(t.eval_context(), ext, 300)
    assert torch.equal(a, b) and sum(calls) == 300  # computed once
    assert len(list((tmp_path / "stats").glob("digits-*-toy-abc-n300-v1.pt"))) == 1
    ctx = t.eval_context()
    f1, f2 = features.fake_features(ctx, ext, 50), features.fake_features(ctx, ext, 50)
    assert f1 is f2  # shared within one evaluation

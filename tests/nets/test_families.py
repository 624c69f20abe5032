"""Every image net family: shapes at every resolution it supports (grey and RGB), conditions that
change the image, a train step of scgan and of micgan, bit-for-bit resume, clear refusals."""

from __future__ import annotations

import pytest
import torch

from selfcond.config import resolve
from selfcond.errors import UserError
from selfcond.nets.base import FAMILIES, Discriminator, Encoder, Generator
from selfcond.partition.none import NoPartition  # noqa: F401 - the registries load with it
from selfcond.train import Trainer, checkpoint, start_run

# family: (resolutions it supports, small options for tests)
FAMILY_CASES = {
    "dcgan": ((28, 32, 64), {"g_width": 8, "d_width": 8, "z_dim": 16, "embed_dim": 8}),
    "dcgan-deep": ((28, 32, 64), {"g_width": 4, "d_width": 4, "z_dim": 16, "embed_dim": 8}),
    "resnet": ((32, 64, 128, 256), {"g_width": 2, "d_width": 2, "z_dim": 16, "embed_dim": 8}),
    "resnet-sngan": ((28, 32), {"variant": "sngan", "g_width": 4, "d_width": 4, "z_dim": 16, "embed_dim": 8}),
    "stylegan2": ((28, 32, 64, 128, 256), {"g_width": 2, "d_width": 2, "z_dim": 16, "w_dim": 16, "mapping_layers": 2}),
}


def options(name: str, **over):
    arch = name.split("-sngan")[0]
    fam = FAMILIES.get(arch)
    return fam, fam.options(arch=arch, **{**FAMILY_CASES[name][1], **over})


@pytest.mark.parametrize("name,res,channels", [(n, r, c) for n, (rs, _) in FAMILY_CASES.items() for r in rs
                                               for c in (1, 3)])
def test_shapes_at_every_resolution_grey_and_rgb(name, res, channels):
    fam, o = options(name)
    k = 5
    g, d = fam.build(o, (channels, res, res), k, __import__("selfcond.nets.base", fromlist=["x"]).DiscriminatorNeeds())
    q = fam.encoder(o, (channels, res, res), 7)
    assert isinstance(g, Generator) and isinstance(d, Discriminator) and isinstance(q, Encoder)
    torch.manual_seed(0)
    z, y = torch.randn(4, o.z_dim), torch.tensor([0, 1, 2, 3])
    x = g(z, y)
    assert x.shape == (4, channels, res, res)
    if name != "stylegan2":  # StyleGAN2 leaves its output unbounded, as the original
        assert x.min() >= -1 and x.max() <= 1
    assert d(x, y).shape == (4,) and d(x).shape == (4,)
    assert d.features(x).shape == (4, d.feature_dim)
    assert q(x).shape == (4, 7)
    g.eval()
    a, b = g(z, y), g(z, torch.tensor([4, 4, 4, 4]))
    assert not torch.allclose(a, b)  # the condition changes the image
    mixed = g(z, torch.eye(k)[y])  # mixing weights of one-hot modes are the modes
    assert torch.allclose(mixed, a, atol=1e-5)


SMALL = {"train.batch": 8, "train.threads": 1, "method.k": 4, "train.eval_samples": 200, "train.snapshot_every": 4,
         "data.holdout": 0.9}  # 180 of the digits: a refresh labels them all
SCHEDULE = {"scgan": {"method.recluster_every": 2, "method.cluster_samples": 64},
            "micgan": {"method.init_steps": 2, "method.epoch_steps": 2, "method.q_steps": 2}}


def run_cfg(name: str, method: str, steps: int, res: int = 32, **over):
    arch = name.split("-sngan")[0]
    model = {f"model.{k}": v for k, v in FAMILY_CASES[name][1].items()}
    return resolve(overrides={"data.name": "digits", "data.resolution": res, "model.arch": arch, "method.name": method,
                              "train.steps": steps, **SMALL, **SCHEDULE[method], **model, **over})


@pytest.mark.parametrize("name", ["dcgan-deep", "resnet", "resnet-sngan", "stylegan2"])
@pytest.mark.parametrize("method", ["scgan", "micgan"])
def test_a_family_trains_and_resumes_bit_for_bit(tmp_path, name, method):
    over = {"train.r1": 1.0, "train.r1_every": 2} if name == "stylegan2" else {}
    straight = Trainer(run_cfg(name, method, 6, **over))
    straight.train(progress=False)
    assert straight.partition.conditional  # micgan past its first round
    first = start_run(run_cfg(name, method, 4, **over), tmp_path)
    first.train(progress=False)
    resumed = Trainer(run_cfg(name, method, 6, **over), first.run_dir)
    resumed.load_state_dict(checkpoint.read(first.run_dir))
    resumed.train(progress=False)
    for (key, a), b in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(a, b), key
    assert torch.equal(straight.partition.counts, resumed.partition.counts)


@pytest.mark.parametrize("arch,res,message", [
    ("dcgan-deep", 128, "must be one of 28, 32, 64 for model.arch dcgan-deep"),
    ("resnet", 28, "must be one of 32, 64, 128, 256 for model.arch resnet"),
    ("stylegan2", 48, "must be one of 28, 32, 64, 128, 256 for model.arch stylegan2"),
    ("biggan", 32, "model.arch must be auto or one of"),
])
def test_an_unsupported_resolution_or_arch_is_one_line(arch, res, message):
    with pytest.raises(UserError, match=message):
        resolve(overrides={"model.arch": arch, "data.resolution": res})


def test_sngan_is_for_cifar_sizes():
    with pytest.raises(UserError, match="variant sngan"):
        resolve(overrides={"model.arch": "resnet", "model.variant": "sngan", "data.resolution": 64})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["dcgan-deep", "resnet", "stylegan2"])
def test_cuda_bf16_channels_last_trains_and_resumes(tmp_path, name):
    over = {"train.device": "cuda", "train.amp": True, "train.channels_last": True}
    straight = Trainer(run_cfg(name, "scgan", 6, **over))
    straight.train(progress=False)
    first = start_run(run_cfg(name, "scgan", 4, **over), tmp_path)
    first.train(progress=False)
    resumed = Trainer(run_cfg(name, "scgan", 6, **over), first.run_dir)
    resumed.load_state_dict(checkpoint.read(first.run_dir))
    resumed.train(progress=False)
    for a, b in zip(straight.G.state_dict().values(), resumed.G.state_dict().values()):
        assert torch.equal(a, b)


def test_wide_nets_process_a_whole_set_in_chunks_that_bound_memory():
    """A 512-channel StyleGAN2 D featurises (and G generates) a set in chunks, never 5,000 images'
    activations at once; the chunks give the features of the whole set (k-means sees the same: the
    features take minibatch std per image)."""
    from selfcond.nets import stylegan2
    from selfcond.nets.base import DiscriminatorNeeds, activation_chunk
    from selfcond.partition.kmeans import batched_features

    fam, o = options("stylegan2", g_width=64, d_width=64)  # the paper's CIFAR width
    g, d = fam.build(o, (3, 32, 32), 4, DiscriminatorNeeds())
    widest = stylegan2.widest(64, 32)
    assert widest == 512 * 32 * 32
    assert d.chunk == g.chunk == activation_chunk(widest) == 256
    assert d.chunk * widest <= 1 << 27
    fam, o = options("stylegan2")  # narrow nets keep the chunks of the small families' sizes
    small_g, small_d = fam.build(o, (1, 28, 28), 4, DiscriminatorNeeds())
    assert small_d.chunk == 5000

    small_d.chunk = 3
    calls = []
    small_d.features = (lambda f: lambda x: calls.append(len(x)) or f(x))(small_d.features)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        whole = torch.cat([small_d.trunk(x[i:i + 1], per_image=True) for i in range(8)])
        assert torch.allclose(batched_features(small_d, x), whole, atol=1e-6)
    assert calls == [3, 3, 2]

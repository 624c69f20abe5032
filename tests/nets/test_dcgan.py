import pytest
import torch
import torch.nn.functional as F

from selfcond.data.images import digits
from selfcond.nets.dcgan import DCGANDiscriminator, DCGANGenerator


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convs gain nothing from threads, and on a shared CPU the threads' spin-waits cost 10x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("res", [28, 32, 64])
@pytest.mark.parametrize("ch", [1, 3])
def test_shapes(res, ch):
    torch.manual_seed(0)
    g = DCGANGenerator(5, z_dim=16, width=16, resolution=res, channels=ch, embed_dim=8)
    d = DCGANDiscriminator(5, width=16, resolution=res, channels=ch)
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 4])
    x = g(z, y)
    assert x.shape == (4, ch, res, res) and x.abs().max() <= 1 and g.z_dim == 16
    assert d.features(x).shape == (4, d.feature_dim)
    assert d(x).shape == (4,) and d(x, y).shape == (4,)
    assert not torch.allclose(d(x), d(x, y))


def test_default_sizes_and_bad_resolution():
    d = DCGANDiscriminator(10)
    assert d.feature_dim == 256 * 2 * 2  # 4 * width channels at 2x2 for 32 px
    assert DCGANGenerator(10).z_dim == 128
    with pytest.raises(ValueError):
        DCGANGenerator(10, resolution=48)


def test_condition_changes_the_output():
    torch.manual_seed(0)
    g = DCGANGenerator(3, z_dim=16, width=8).eval()
    z = torch.randn(2, 16).repeat(3, 1)
    x = g(z, torch.arange(3).repeat_interleave(2))
    assert not torch.allclose(x[:2], x[2:4])


def test_one_step_reaches_every_parameter_and_training_moves_d():
    torch.manual_seed(0)
    data = digits(32)
    gen = torch.Generator().manual_seed(0)
    g, d = DCGANGenerator(10, z_dim=32, width=16), DCGANDiscriminator(10, width=16)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    losses = []
    for step in range(20):
        b = data.batch(32, gen, "cpu")
        y = torch.randint(10, (32,), generator=gen)
        fake = g(torch.randn(32, 32, generator=gen), y)
        half = slice(0, 16)  # both heads used, so both get gradients
        fd = fake.detach()
        loss_d = (F.softplus(-d(b.x[half])).mean() + F.softplus(-d(b.x[16:], b.y[16:])).mean()
                  + F.softplus(d(fd[half])).mean() + F.softplus(d(fd[16:], y[16:])).mean())
        opt_d.zero_grad()
        loss_d.backward()
        if step == 0:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
        opt_d.step()
        loss_g = F.softplus(-d(fake, y)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        if step == 0:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
        opt_g.step()
        losses.append(loss_d.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < sum(losses[:5])  # D learns to tell digits from noise


def test_projection_head_is_unconditional_logit_plus_inner_product():
    d = DCGANDiscriminator(5, width=8, resolution=28, channels=1, head="projection")
    x = torch.randn(6, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    h = d.features(x)
    expected = d.head.uncond(h).squeeze(1) + (d.head.cond.weight[y] * h).sum(1)
    assert torch.allclose(d(x, y), expected, atol=1e-6)
    assert torch.allclose(d(x), d.head.uncond(h).squeeze(1))


def test_encoder_has_no_batchnorm_and_embeds_each_image_alone():
    from selfcond.nets.dcgan import DCGANEncoder

    q = DCGANEncoder(7, width=8, resolution=32, channels=3)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in q.modules())
    x = torch.randn(4, 3, 32, 32)
    assert q(x).shape == (4, 7) and torch.allclose(q(x)[1:2], q(x[1:2]), atol=1e-6)


def test_add_conditioning_mixes_codes_linearly():
    from selfcond.nets.layers import AddEmbedding

    cond = AddEmbedding(3, 4)
    z = torch.randn(2, 4)
    w = torch.tensor([[0.25, 0.75, 0.0], [0.0, 0.0, 1.0]])
    e = cond.embedding.weight
    assert torch.allclose(cond(z, w), z + torch.stack([0.25 * e[0] + 0.75 * e[1], e[2]]))
    assert torch.allclose(cond(z, torch.tensor([2, 2]))[1], cond(z, w)[1])

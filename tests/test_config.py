import pytest

from selfcond import config
from selfcond.errors import UserError


def test_presets_follow_the_papers_2d_code():
    cfg = config.resolve(overrides={"data.name": "grid", "method.name": "scgan"})
    assert cfg.method.k == 50 and cfg.method.recluster_every == 5000
    assert cfg.method.cluster_samples == 10000
    assert cfg.train.batch == 100 and cfg.train.lr == 1e-4 and cfg.train.betas == [0.8, 0.999]
    assert (cfg.model.z_dim, cfg.model.g_width, cfg.model.d_width) == (2, 400, 200)


def test_method_presets_and_image_defaults():
    assert config.resolve(overrides={"data.name": "ring", "method.name": "pacgan"}).method.pack == 2
    assert config.resolve(overrides={"data.name": "ring", "method.name": "mbd"}).method.mbd_kernels > 0
    img = config.resolve({"data": {"name": "cifar10"}})
    assert img.train.batch == 64 and img.train.betas == [0.0, 0.99] and img.method.k == 100
    # Stacked MNIST keeps the random D's clusters for 25,000 steps, as the paper's config does.
    assert config.resolve({"data": {"name": "stacked-mnist"}}).method.recluster_every == 25000
    demo = config.resolve()  # `selfcond train` with no arguments: the digits demo
    assert demo.data.name == "digits" and demo.method.name == "scgan" and demo.method.k == 10
    # MIC-GANs: the schedule measured in docs/RESULTS.md, a long initialization then 7 rounds.
    mic = config.resolve({"data": {"name": "mnist"}, "method": {"name": "micgan"}})
    assert (mic.train.steps, mic.method.init_steps, mic.method.epoch_steps, mic.method.sample_epochs,
            mic.train.r1, mic.model.g_cond, mic.method.q_shift) == (14000, 7000, 1000, 7, 10.0, "add", 2)


def test_layers_user_file_then_flags():
    cfg = config.resolve({"data": {"name": "ring"}, "train": {"steps": 7, "lr": 3e-4}},
                         {"train.steps": 9})
    assert cfg.train.steps == 9 and cfg.train.lr == 3e-4 and cfg.data.name == "ring"


def test_exponent_floats_written_without_a_dot_are_numbers():
    # PyYAML reads `lr: 1e-4` as the string "1e-4"; users should not have to know that.
    assert config.resolve({"train": {"lr": "1e-4"}}).train.lr == 1e-4


def test_yaml_round_trip(tmp_path):
    cfg = config.resolve(overrides={"data.name": "grid", "method.k": 12})
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml(cfg))
    assert config.resolve(config.load_yaml(path)) == cfg


@pytest.mark.parametrize("user, message", [
    ({"train": {"stepz": 3}}, "unknown key 'train.stepz'"),
    ({"bogus": 1}, "unknown key 'bogus'"),
    ({"method": {"k": 0}}, "method.k must be >= 1"),
    ({"train": {"steps": -5}}, "train.steps must be >= 0"),
    ({"train": {"lr": "fast"}}, "train.lr must be a number"),
    ({"train": {"batch": 2.5}}, "train.batch must be an integer"),
    ({"method": {"name": "vae"}}, "method.name must be one of"),
    ({"train": {"device": "tpu"}}, "train.device must be"),
    ({"data": {"name": "grid"}, "method": {"name": "scgan"}, "model": {"pack": 2}}, "only works with an unconditional"),
    ({"train": {"ema": 1.0}}, "train.ema must be in [0, 1)"),
    ({"method": {"name": "micgan", "gibbs_block": -1}}, "method.gibbs_block must be >= 0 (0 = N / 16)"),
    ({"method": {"name": "micgan", "q_shift": -2}}, "method.q_shift must be >= 0"),
    ({"method": {"name": "scgan", "alpha": 2.0}}, "unknown key 'method.alpha' for method scgan"),
    ({"method": {"name": "gan", "k": 5}}, "unknown key 'method.k' for method gan"),
    ({"method": {"k": None}}, "method.k must not be null"),
    ({"data": {"name": "ring"}, "model": {"arch": "dcgan"}}, "model.arch dcgan is for images data"),
    ({"data": {"name": "digits", "resolution": 48}}, "data.resolution must be one of 28, 32, 64"),
    ({"version": 7}, "version 7 is not a config version"),
    ({"data": {"name": "ring"}, "method": {"name": "pacgan"}, "train": {"batch": 63}}, "train.batch (63) must be a multiple of method.pack"),
    ({"method": {"name": "mbd"}}, "only implemented for the 2D nets"),
    ({"data": {"name": "mnist"}, "method": {"name": "micgan"}, "train": {"steps": 5000}},
     "method.init_steps (7000) must be below train.steps (5000)"),
    ({"train": "fast"}, "train must be a mapping"),
])
def test_bad_values_are_one_clear_line(user, message):
    with pytest.raises(UserError) as e:
        config.resolve(user)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        config.load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load_yaml(bad)

"""User mistakes, as a new user makes them: every one is one line on stderr that names the input,
exit code 2, and no run directory left behind; what makes sense is accepted.

Each case runs `selfcond` in this process against a world of small real files (runs, checkpoints,
datasets, configs) made once per module. `python tests/test_user_errors.py` prints the table of
docs/RESULTS.md (the inputs by kind and their outcome).
"""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clirun import cli

MARKER = "selfcond-pickle-ran"  # a malicious pickle would create this file


@dataclass
class Case:
    kind: str
    what: str
    args: list  # str.format'ed with the world's paths
    expect: str  # in stderr (refused) or stdout (accepted)
    code: int = 2
    needs: str = ""  # "nocuda": only without a GPU


@dataclass
class World:
    root: Path
    paths: dict = field(default_factory=dict)

    def fmt(self, args: list) -> list[str]:
        return [str(a).format(**self.paths) for a in args]


def _train_tiny(out: Path, **over) -> Path:
    from selfcond.config import resolve
    from selfcond.train import start_run

    base = {"data.name": "digits", "method.name": "scgan", "method.k": 4, "model.g_width": 8,
            "model.d_width": 8, "model.z_dim": 16, "model.embed_dim": 8, "train.batch": 16,
            "train.steps": 10, "train.snapshot_every": 10, "method.recluster_every": 5, "train.threads": 1,
            "train.eval_samples": 500}
    if over.get("method.name") == "gan":
        base = {k: v for k, v in base.items() if not k.startswith("method.")}
        over = {"data.name": "ring", "model.z_dim": 2, **over}
    t = start_run(resolve(overrides={**base, **over}), out)
    t.train(progress=False)
    return t.run_dir


def _idx(path: Path, array: np.ndarray, raw: bytes | None = None) -> None:
    from selfcond.data.idx import write_idx

    if raw is not None:
        path.write_bytes(raw)
    else:
        write_idx(path, array)


def _mnist_dir(root: Path, n=12, labels=None, images_shape=None, magic_ok=True, truncate=False, gz_bad=False):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, images_shape or (n, 28, 28))
    lab = np.arange(n) % 10 if labels is None else labels
    _idx(root / "train-images-idx3-ubyte.gz", images)
    _idx(root / "train-labels-idx1-ubyte.gz", lab)
    if not magic_ok:
        (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04garbage"))
    if truncate:
        raw = gzip.decompress((root / "train-images-idx3-ubyte.gz").read_bytes())
        (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    if gz_bad:
        (root / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    return root


class _Payload:
    """Unpickling this would create MARKER: a stand-in for a malicious file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def make_world(root: Path) -> World:
    w = World(root)
    p = w.paths
    p["empty"] = root / "empty-out"  # --out of the train cases: must hold no run after a refusal
    p["missing"] = root / "never-made"
    p["run"] = _train_tiny(root / "runs")
    p["gan"] = _train_tiny(root / "gan-runs", **{"method.name": "gan"})
    ckpt = p["run"] / (p["run"] / "latest").read_text().strip()
    p["ckpt"] = ckpt
    state = torch.load(ckpt, weights_only=True)

    def bad_run(name, write):
        d = root / name
        d.mkdir()
        shutil.copy(p["run"] / "config.yaml", d / "config.yaml")
        (d / "latest").write_text("checkpoint-00000010.pt\n")
        write(d / "checkpoint-00000010.pt")
        p[name.replace("-", "_")] = d

    bad_run("corrupt", lambda f: f.write_bytes(b"PK\x03\x04 half written"))
    bad_run("listckpt", lambda f: torch.save([1, 2, 3], f))
    bad_run("nog", lambda f: torch.save({k: v for k, v in state.items() if k != "G"}, f))
    bad_run("version9", lambda f: torch.save({**state, "version": 9}, f))
    bad_run("textckpt", lambda f: f.write_text("hello"))
    bad_run("pickled", lambda f: f.write_bytes(pickle.dumps({"G": _Payload(root / MARKER)})))
    edited = json.loads(json.dumps(state["config"]))
    edited["method"]["k"] = 7
    bad_run("editedk", lambda f: torch.save({**state, "config": edited}, f))
    wide = json.loads(json.dumps(state["config"]))
    wide["model"]["g_width"] = 16
    bad_run("editedwidth", lambda f: torch.save({**state, "config": wide}, f))
    dead = {**state, "partition": {**state["partition"], "counts": state["partition"]["counts"].clone()}}
    dead["partition"]["counts"][-1] = 0
    bad_run("deadmode", lambda f: torch.save(dead, f))
    (root / "nolatest").mkdir()
    p["nolatest"] = root / "nolatest"
    (root / "dangling").mkdir()
    (root / "dangling" / "latest").write_text("checkpoint-00000099.pt\n")
    p["dangling"] = root / "dangling"
    (root / "notarun").mkdir()
    p["notarun"] = root / "notarun"
    p["afile"] = root / "a-file.txt"
    p["afile"].write_text("not a directory")
    p["adir"] = root / "a-dir"
    p["adir"].mkdir()

    # configs
    cfgs = root / "configs"
    cfgs.mkdir()
    (cfgs / "garbage.yaml").write_bytes(bytes(range(256)) * 4)
    (cfgs / "invalid.yaml").write_text("train: [unclosed\n")
    (cfgs / "list.yaml").write_text("- 1\n- 2\n")
    (cfgs / "scalar.yaml").write_text("just words\n")
    (cfgs / "version7.yaml").write_text("version: 7\n")
    (cfgs / "steps.yaml").write_text("data: {name: ring}\ntrain: {steps: -1}\n")
    (cfgs / "knull.yaml").write_text("method: {k: null}\n")
    (cfgs / "packmbd.yaml").write_text("data: {name: ring}\nmodel: {pack: 2, mbd_kernels: 4}\nmethod: {name: gan}\n")
    (cfgs / "sectionlist.yaml").write_text("train: [1, 2]\n")
    p["cfg"] = cfgs

    # data files
    data = root / "data"
    _mnist_dir(data / "idx-empty", n=0, images_shape=(0, 28, 28))
    _mnist_dir(data / "idx-magic", magic_ok=False)
    _mnist_dir(data / "idx-truncated", truncate=True)
    _mnist_dir(data / "idx-mismatch", n=12, labels=np.arange(10) % 10)
    _mnist_dir(data / "idx-labels", labels=np.full(12, 42))
    _mnist_dir(data / "idx-gz", gz_bad=True)
    (data / "nothing").mkdir()
    (data / "damaged.zip").write_bytes(b"PK\x03\x04 cut short")
    with zipfile.ZipFile(data / "empty.zip", "w") as z:
        z.writestr("readme.txt", "no images here")
    for name, content in (("cifar-evil", lambda: pickle.dumps(_Payload(root / MARKER))),
                          ("cifar-shape", lambda: pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]})),
                          ("cifar-labels", lambda: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                                   b"labels": [1, 12]}))):
        d = data / name / "cifar-10-batches-py"
        d.mkdir(parents=True)
        for i in range(1, 6):
            (d / f"data_batch_{i}").write_bytes(content())
    folders = data / "folders"
    for name in ("five", "text-only", "unreadable", "badjson", "nolabel", "strlabel", "rgb"):
        (folders / name).mkdir(parents=True)
    for i in range(5):
        Image.new("L", (8, 8), i * 40).save(folders / "five" / f"{i}.png")
        Image.new("L", (8, 8), i * 40).save(folders / "nolabel" / f"{i}.png")
        Image.new("L", (8, 8), i * 40).save(folders / "strlabel" / f"{i}.png")
        Image.new("L", (8, 8), i * 40).save(folders / "badjson" / f"{i}.png")
        (folders / "unreadable" / f"{i}.png").write_bytes(b"not a png")
    (folders / "text-only" / "notes.txt").write_text("no images here")
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 80, 0, 0)).save(folders / "rgb" / f"{i}.png")
    (folders / "badjson" / "dataset.json").write_text("{not json")
    (folders / "nolabel" / "dataset.json").write_text(json.dumps({"labels": [["0.png", 1]]}))
    (folders / "strlabel" / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", "cat"] for i in range(5)]}))
    p["data"] = data
    p["folders"] = folders
    return w


T, CFG, SET, D, R, G, I, E, P, B, A = ("train: numbers", "config files", "train: --set keys", "data files",
                                       "resume and checkpoints", "generate", "interpolate", "evaluate",
                                       "report and datasets", "bench", "accepted (sensible)")
OUT = ["--out", "{empty}"]
TINY = ["--set", "model.g_width=8", "--set", "model.d_width=8", "--threads", "1", "--quiet"]

CASES = [
    # --- train: numeric options at 0, negative, beyond the data, not numbers ----------------------
    Case(T, "--k 0", ["train", "--data", "ring", "--k", "0", *OUT], "method.k must be >= 1"),
    Case(T, "--k negative", ["train", "--data", "ring", "--k", "-3", *OUT], "method.k must be >= 1"),
    Case(T, "--k not a number", ["train", "--k", "abc", *OUT], "Invalid value for '--k'"),
    Case(T, "--k 3000 on the 1,797 digits", ["train", "--k", "3000", *OUT, *TINY], "is more than the 1797 images clustered"),
    Case(T, "--k 10 on a folder of 5 images", ["train", "--data", "{folders}/five", "--k", "10", *OUT, *TINY],
         "is more than the 5 images clustered"),
    Case(T, "--k for an unconditional method", ["train", "--data", "ring", "--method", "gan", "--k", "5", *OUT],
         "unknown key 'method.k' for method gan"),
    Case(T, "--steps negative", ["train", "--steps", "-1", *OUT], "train.steps must be >= 0"),
    Case(T, "--steps not a number", ["train", "--steps", "x", *OUT], "Invalid value for '--steps'"),
    Case(T, "--batch 0", ["train", "--batch", "0", *OUT], "train.batch must be >= 2"),
    Case(T, "--batch 1 (BatchNorm)", ["train", "--batch", "1", *OUT], "train.batch must be >= 2 (BatchNorm"),
    Case(T, "--batch negative", ["train", "--batch", "-4", *OUT], "train.batch must be >= 2"),
    Case(T, "--batch 100000000", ["train", "--batch", "100000000", *OUT, *TINY], "GiB for one batch"),
    Case(T, "--batch not a multiple of PacGAN's pack", ["train", "--data", "ring", "--method", "pacgan", "--batch", "63", *OUT],
         "must be a multiple of method.pack"),
    Case(T, "--threads negative", ["train", "--threads", "-1", *OUT], "train.threads must be >= 0"),
    Case(T, "--snapshot-every 0", ["train", "--snapshot-every", "0", *OUT], "train.snapshot_every must be >= 1"),
    Case(T, "--snapshot-every negative", ["train", "--snapshot-every", "-5", *OUT], "train.snapshot_every must be >= 1"),
    Case(T, "--nan-retry negative", ["train", "--nan-retry", "-1", *OUT], "train.nan_retry must be >= 0"),
    Case(T, "--seed not a number", ["train", "--seed", "x", *OUT], "Invalid value for '--seed'"),
    Case(T, "--device tpu", ["train", "--device", "tpu", *OUT], "train.device must be auto, cpu or cuda"),
    Case(T, "--device cuda:x", ["train", "--device", "cuda:x", *OUT], "train.device must be auto, cpu or cuda"),
    Case(T, "--device cuda without a GPU", ["train", "--device", "cuda", *OUT, *TINY], "CUDA is not available",
         needs="nocuda"),
    Case(T, "--method unknown", ["train", "--method", "vae", *OUT], "method.name must be one of"),
    Case(T, "--data unknown", ["train", "--data", "nowhere", *OUT], "unknown dataset 'nowhere'"),
    Case(T, "--data a missing directory", ["train", "--data", "./no/such/dir", *OUT], "does not exist"),
    Case(T, "--data a file", ["train", "--data", "{afile}", *OUT], "not a zip archive of images"),
    Case(T, "--data a damaged zip", ["train", "--data", "{data}/damaged.zip", *OUT], "not a zip archive of images"),
    Case(T, "--data a zip without images", ["train", "--data", "{data}/empty.zip", *OUT], "no images"),
    Case(T, "--data an empty directory", ["train", "--data", "{data}/nothing", *OUT], "no images"),
    Case(T, "--data-dir for 2D data", ["train", "--data", "ring", "--data-dir", "{adir}", *OUT],
         "unknown key 'data.data_dir' for dataset ring"),
    Case(T, "--out is a file", ["train", "--data", "ring", "--steps", "1", "--out", "{afile}", "--quiet"],
         "a file is in the way"),
    Case(T, "--config with --resume", ["train", "--resume", "{run}", "--config", "{cfg}/steps.yaml"],
         "do not go together"),
    # --- train: --set keys ---------------------------------------------------------------------------
    *[Case(SET, f"--set {kv}", ["train", "--set", kv, *OUT], msg) for kv, msg in [
        ("train.lr=0", "train.lr must be > 0"), ("train.lr=-1", "train.lr must be > 0"),
        ("train.lr=fast", "train.lr must be a number"), ("train.lr=.inf", "train.lr must be a finite number"),
        ("train.lr=.nan", "train.lr must be a finite number"), ("train.betas=[0.5]", "train.betas must be two numbers"),
        ("train.betas=[1.0,0.9]", "train.betas must be two numbers in [0, 1)"),
        ("train.betas=fast", "train.betas must be a list"), ("train.ema=1", "train.ema must be in [0, 1)"),
        ("train.ema=-0.1", "train.ema must be in [0, 1)"), ("train.batch=2.5", "train.batch must be an integer"),
        ("train.batch=true", "train.batch must be an integer"),
        ("train.deterministic=maybe", "train.deterministic must be true or false"),
        ("train.metrics=bogus", "train.metrics must be a list"), ("train.eval_samples=0", "train.eval_samples must be >= 1"),
        ("train.eval_samples=100000000", "train.eval_samples must be <= 1,000,000"),
        ("train.keep_checkpoints=0", "train.keep_checkpoints must be >= 1"),
        ("train.log_every=0", "train.log_every must be >= 1"), ("train.stepz=3", "unknown key 'train.stepz'"),
        ("bogus.x=1", "unknown key 'bogus'"), ("train=3", "train must be a mapping"),
        ("train.steps=null", "train.steps must not be null"), ("method.k=null", "method.k must not be null"),
        ("model.arch=biggan", "model.arch must be auto or one of"), ("model.arch=mlp", "model.arch mlp is for points"),
        ("model.g_cond=sum", "model.g_cond must be one of concat, add"),
        ("model.d_head=x", "model.d_head must be one of multi, projection"),
        ("model.z_dim=0", "model.z_dim must be >= 1"), ("model.g_width=-1", "model.g_width must be >= 1"),
        ("model.pack=2", "'model.pack' is 'method.pack'"), ("method.alpha=2", "unknown key 'method.alpha' for method scgan"),
        ("method.recluster_every=0", "method.recluster_every must be >= 1"),
        ("method.cluster_samples=5", "method.cluster_samples (5) must be >= method.k"),
        ("data.resolution=48", "data.resolution must be one of 28, 32, 64"),
        ("data.resolution=0", "data.resolution must be >= 1"), ("data.name=7", "data.name must be a string"),
        ("noequals", "--set expects KEY=VALUE"), ("train.lr=[unclosed", "is not a value YAML can read"),
    ]],
    Case(SET, "--set train.metrics=[bogus]", ["train", "--set", "train.metrics=[bogus]", "--steps", "1", *OUT, *TINY],
         "unknown metric 'bogus'"),
    Case(SET, "dcgan on 2D points", ["train", "--data", "ring", "--set", "model.arch=dcgan", *OUT],
         "model.arch dcgan is for images"),
    Case(SET, "micgan: alpha 0", ["train", "--method", "micgan", "--set", "method.alpha=0", *OUT], "method.alpha must be > 0"),
    Case(SET, "micgan: init_steps past the budget", ["train", "--method", "micgan", "--steps", "5000", *OUT],
         "method.init_steps (7000) must be below train.steps (5000)"),
    Case(SET, "micgan: gibbs_block negative", ["train", "--method", "micgan", "--set", "method.gibbs_block=-1", *OUT],
         "method.gibbs_block must be >= 0 (0 = N / 16)"),
    Case(SET, "micgan: q_steps 0", ["train", "--method", "micgan", "--set", "method.q_steps=0", *OUT],
         "method.q_steps must be >= 1"),
    Case(SET, "micgan: merge_from negative", ["train", "--method", "micgan", "--set", "method.merge_from=-1", *OUT],
         "method.merge_from must be >= 0 (0 = never)"),
    Case(SET, "micgan: smooth_sweeps negative", ["train", "--method", "micgan", "--set", "method.smooth_sweeps=-2", *OUT],
         "method.smooth_sweeps must be >= 0 (0 = never)"),
    Case(SET, "micgan: smooth_sweeps not a number", ["train", "--method", "micgan", "--set", "method.smooth_sweeps=many", *OUT],
         "method.smooth_sweeps"),
    Case(SET, "micgan: merge_resolution 0", ["train", "--method", "micgan", "--set", "method.merge_resolution=0", *OUT],
         "method.merge_resolution must be > 0, got 0.0"),
    Case(SET, "micgan: scale_prior not a bool", ["train", "--method", "micgan", "--set", "method.scale_prior=maybe", *OUT],
         "method.scale_prior must be true or false, got 'maybe'"),
    Case(SET, "micgan: merge graph with fewer images than neighbours",
         ["train", "--method", "micgan", "--set", "method.merge_points=10", *OUT],
         "method.merge_neighbours (10) must be below method.merge_points (10)"),
    Case(SET, "mbd on images", ["train", "--method", "mbd", *OUT], "only implemented for the 2D nets"),
    Case(SET, "pacgan: pack 0", ["train", "--data", "ring", "--method", "pacgan", "--set", "method.pack=0", *OUT],
         "method.pack must be >= 1"),
    Case(SET, "stacked-mnist: stack_n 0", ["train", "--data", "stacked-mnist", "--set", "data.stack_n=0", *OUT],
         "data.stack_n must be >= 1"),
    # --- config files -------------------------------------------------------------------------------
    *[Case(CFG, f"--config {name}", ["train", "--config", f"{{cfg}}/{name}", *OUT], msg) for name, msg in [
        ("missing.yaml", "config file not found"), ("garbage.yaml", "is not valid YAML"),
        ("invalid.yaml", "is not valid YAML"), ("list.yaml", "must hold a mapping"),
        ("scalar.yaml", "must hold a mapping"), ("version7.yaml", "version 7 is not a config version"),
        ("steps.yaml", "train.steps must be >= 0"), ("knull.yaml", "method.k must not be null"),
        ("packmbd.yaml", "combines model.pack and model.mbd_kernels"), ("sectionlist.yaml", "train must be a mapping"),
    ]],
    Case(CFG, "--config a directory", ["train", "--config", "{cfg}", *OUT], "is a directory"),
    # --- data files ------------------------------------------------------------------------------------
    *[Case(D, f"mnist: {what}", ["train", "--data", "mnist", "--data-dir", f"{{data}}/{d}", *OUT, *TINY], msg)
      for what, d, msg in [
        ("an IDX pair holding 0 images", "idx-empty", "holds no images"),
        ("a bad magic number", "idx-magic", "is not an IDX file"),
        ("a truncated file", "idx-truncated", "is truncated"),
        ("images and labels of different counts", "idx-mismatch", "do not match"),
        ("labels beyond 0..9", "idx-labels", "labels must be 0..9"),
        ("a file that is not gzip", "idx-gz", "cannot read"),
        ("no files, no download", "nothing", "cannot download"),
    ]],
    *[Case(D, f"cifar10: {what}", ["train", "--data", "cifar10", "--data-dir", f"{{data}}/{d}", *OUT, *TINY], msg)
      for what, d, msg in [
        ("a malicious pickle (refused, never run)", "cifar-evil", "not a readable CIFAR-10 batch"),
        ("data of the wrong shape", "cifar-shape", "b'data' must be an (N, 3072) uint8 array"),
        ("labels beyond 0..9", "cifar-labels", "b'labels' must be 2 integers in 0..9"),
    ]],
    *[Case(D, f"folder: {what}", ["train", "--data", f"{{folders}}/{d}", *OUT, *TINY], msg) for what, d, msg in [
        ("no image files", "text-only", "no images"),
        ("only unreadable images", "unreadable", "none of the 5 images"),
        ("a dataset.json that is not JSON", "badjson", "expected {\"labels\""),
        ("a dataset.json missing labels", "nolabel", "has no label for 4 image(s)"),
        ("a dataset.json with text labels", "strlabel", "labels must be integers"),
    ]],
    # --- resume and checkpoints ----------------------------------------------------------------------
    *[Case(R, f"--resume {what}", ["train", "--resume", f"{{{key}}}"] + extra, msg) for what, key, extra, msg in [
        ("a missing run", "missing", [], "no run directory or checkpoint at"),
        ("a directory without 'latest'", "nolatest", [], "no 'latest' file"),
        ("'latest' naming a missing checkpoint", "dangling", [], "checkpoint not found"),
        ("a half-written checkpoint", "corrupt", [], "corrupt or unreadable"),
        ("a checkpoint holding a list", "listckpt", [], "holds a list"),
        ("a checkpoint without G", "nog", [], "lacks G"),
        ("a checkpoint of version 9", "version9", [], "checkpoint version 9 is not supported"),
        ("a text file as checkpoint", "textckpt", [], "corrupt or unreadable"),
        ("a malicious pickle (refused, never run)", "pickled", [], "corrupt or unreadable"),
        ("a checkpoint whose config says k = 7 for 4 modes", "editedk", [], "has 4 modes but its config says method.k = 7"),
        ("a checkpoint whose config widens G", "editedwidth", [], "does not match its config"),
        ("changing the learning rate", "run", ["--set", "train.lr=0.1"], "cannot change train.lr"),
        ("changing k", "run", ["--k", "7"], "cannot change method.k"),
        ("an unknown key", "run", ["--set", "train.stepz=1"], "unknown key 'train.stepz'"),
        ("a directory that is no run", "notarun", [], "no 'latest' file"),
    ]],
    Case(R, "--resume latest with no runs", ["train", "--resume", "latest", "--out", "{empty}"], "no run with a checkpoint under"),
    # --- generate --------------------------------------------------------------------------------------
    *[Case(G, f"generate {what}", ["generate", f"{{{key}}}", *extra], msg) for what, key, extra, msg in [
        ("a missing run", "missing", [], "run not found"),
        ("a directory that is no run", "notarun", [], "no checkpoint in run directory"),
        ("--mode 7 of 4", "run", ["--mode", "7"], "mode 7 does not exist"),
        ("--mode -1", "run", ["--mode", "-1"], "mode -1 does not exist"),
        ("--mode abc", "run", ["--mode", "abc"], "--mode expects a number or 'all'"),
        ("a dead mode", "deadmode", ["--mode", "3"], "mode 3 is dead"),
        ("--mode all of an unconditional run", "gan", ["--mode", "all"], "is unconditional"),
        ("--mode 0 of an unconditional run", "gan", ["--mode", "0"], "is unconditional"),
        ("--seeds abc", "run", ["--seeds", "abc"], "--seeds expects a list like 0-63"),
        ("--seeds negative", "run", ["--seeds", "-3"], "--seeds must name seeds >= 0"),
        ("--seeds an empty range", "run", ["--seeds", "5-2"], "--seeds must name seeds >= 0"),
        ("--seeds 0-100000000", "run", ["--seeds", "0-100000000"], "names more than 100,000 images"),
        ("--n 0", "run", ["--n", "0"], "Invalid value for '--n'"),
        ("--n 1000000", "run", ["--n", "1000000"], "Invalid value for '--n'"),
        ("--out an existing file", "run", ["--out", "{afile}"], "is a file, not a directory"),
        ("a grid of 40,000 images", "run", ["--mode", "all", "--seeds", "0-9999", "--grid"], "a grid holds at most 4,096"),
        ("a half-written checkpoint", "corrupt", [], "corrupt or unreadable"),
        ("a checkpoint without G", "nog", [], "lacks G"),
        ("a checkpoint holding a list", "listckpt", [], "holds a list"),
        ("a malicious pickle (refused, never run)", "pickled", [], "corrupt or unreadable"),
        ("a checkpoint whose config says k = 7", "editedk", [], "has 4 modes but its config says method.k = 7"),
        ("--device tpu", "run", ["--device", "tpu"], "train.device must be auto, cpu or cuda"),
    ]],
    Case(G, "generate --device cuda without a GPU", ["generate", "{run}", "--device", "cuda"], "CUDA is not available",
         needs="nocuda"),
    # --- interpolate -------------------------------------------------------------------------------------
    *[Case(I, f"interpolate {what}", ["interpolate", f"{{{key}}}", *extra], msg) for what, key, extra, msg in [
        ("one mode", "run", ["--modes", "1"], "needs 2 or 4 modes"),
        ("three modes", "run", ["--modes", "0,1,2"], "needs 2 or 4 modes"),
        ("modes that are no numbers", "run", ["--modes", "a,b"], "--modes expects numbers"),
        ("a mode beyond k", "run", ["--modes", "0,9"], "mode 9 does not exist"),
        ("a dead mode", "deadmode", ["--modes", "0,3"], "mode 3 is dead"),
        ("--steps 1", "run", ["--modes", "0,1", "--steps", "1"], "Invalid value for '--steps'"),
        ("--steps 1000", "run", ["--modes", "0,1", "--steps", "1000"], "Invalid value for '--steps'"),
        ("--rows 0", "run", ["--modes", "0,1", "--rows", "0"], "Invalid value for '--rows'"),
        ("--out an existing directory", "run", ["--modes", "0,1", "--out", "{adir}"], "is a directory"),
        ("--out inside a file", "run", ["--modes", "0,1", "--out", "{afile}/x.png"], "is not a directory"),
        ("an unconditional run", "gan", ["--modes", "0,1"], "is unconditional"),
        ("a missing run", "missing", ["--modes", "0,1"], "run not found"),
    ]],
    # --- evaluate ------------------------------------------------------------------------------------------
    *[Case(E, f"evaluate {what}", ["evaluate", f"{{{key}}}", *extra], msg) for what, key, extra, msg in [
        ("--metrics bogus", "run", ["--metrics", "bogus"], "unknown metric 'bogus'"),
        ("--metrics of 2D data on images", "run", ["--metrics", "hq"], "does not apply"),
        ("--n 0", "run", ["--n", "0"], "Invalid value for '--n'"),
        ("--n 10000000", "run", ["--n", "10000000"], "Invalid value for '--n'"),
        ("--json an existing directory", "run", ["--json", "{adir}"], "is a directory"),
        ("a missing run", "missing", [], "run not found"),
        ("a half-written checkpoint", "corrupt", [], "corrupt or unreadable"),
    ]],
    # --- assign and export --------------------------------------------------------------------------------
    *[Case(E, f"{verb} {what}", [verb, f"{{{key}}}", *extra], msg) for verb, what, key, extra, msg in [
        ("assign", "an unconditional run", "gan", [], "is sampled fresh"),
        ("assign", "--split of a dataset without splits", "run", ["--split", "test"], "dataset 'digits' has no split"),
        ("assign", "a folder of RGB images to a grey run", "run", ["{folders}/rgb"], "this run's are (1, 32, 32)"),
        ("assign", "a missing folder", "run", ["{missing}"], "does not exist"),
        ("assign", "--quantile 1", "run", ["--quantile", "1"], "Invalid value for '--quantile'"),
        ("assign", "--out an existing directory", "run", ["--out", "{adir}"], "is a directory"),
        ("export", "to an existing directory", "run", ["{adir}"], "is a directory"),
        ("export", "a missing run", "missing", [], "run not found"),
        ("export", "a half-written checkpoint", "corrupt", [], "corrupt or unreadable"),
        ("evaluate", "--metrics prdc without an Inception file", "run", ["--metrics", "prdc"], "does not apply"),
        ("evaluate", "--metrics heldout without held-out images", "run", ["--metrics", "heldout"], "does not apply"),
    ]],
    # --- report and datasets -------------------------------------------------------------------------------
    Case(P, "report a missing directory", ["report", "{missing}"], "run directory not found"),
    Case(P, "report a directory that is no run", ["report", "{notarun}"], "is not a run directory"),
    Case(P, "datasets info unknown", ["datasets", "info", "nope"], "unknown dataset 'nope'"),
    Case(P, "an unknown verb", ["trian"], "No such command 'trian'"),
    # --- bench ----------------------------------------------------------------------------------------------
    *[Case(B, f"bench {' '.join(args)}", ["bench", *args], msg) for args, msg in [
        (["2d", "--data", "moon"], "unknown dataset 'moon'"),
        (["2d", "--methods", "vae"], "unknown method 'vae'"),
        (["2d", "--trials", "0"], "Invalid value for '--trials'"),
        (["2d", "--jobs", "0"], "Invalid value for '--jobs'"),
        (["2d", "--methods", "gan,scgan", "--set", "method.alpha=2"], "none of the methods gan, scgan has that option"),
        (["2d", "--set", "noeq"], "--set expects KEY=VALUE"),
        (["2d", "--json", "{adir}"], "is a directory"),
        (["2d", "--out", "{afile}"], "is a file"),
        (["clusters", "--data", "digits", "--data-dir", "mnist=/x"], "--data-dir names mnist"),
        (["kmeans", "--k", "10", "--n", "5"], "--k (10) must be at most --n (5)"),
        (["gibbs", "--k", "20", "--d", "5"], "--k (20) must be at most --d (5)"),
        (["gibbs-blocks", "--blocks", "a,b"], "--blocks expects numbers"),
        (["gibbs-blocks", "--burn", "200", "--sweeps", "100"], "need 0 <= burn < sweeps"),
        (["snapshot", "--steps", "0"], "Invalid value for '--steps'"),
        (["nosuch"], "No such command 'nosuch'"),
    ]],
    # --- what makes sense is done -------------------------------------------------------------------------
    Case(A, "train --steps 0: nothing to train, the start's metrics",
         ["train", "--data", "ring", "--method", "gan", "--steps", "0", *OUT, *TINY], '"step": 0', code=0),
    Case(A, "train --k 1: one mode", ["train", "--k", "1", "--steps", "2", *OUT, *TINY], '"step": 2', code=0),
    Case(A, "train --batch 2: the smallest", ["train", "--batch", "2", "--steps", "2", *OUT, *TINY], '"step": 2', code=0),
    Case(A, "train --out into a missing directory: created", ["train", "--data", "ring", "--method", "gan",
         "--steps", "1", "--out", "{root}/new/runs", *TINY], '"step": 1', code=0),
    Case(A, "--resume a checkpoint file", ["train", "--resume", "{ckpt}", "--steps", "12", "--quiet"], '"step": 12', code=0),
    Case(A, "interpolate --out into a missing directory: created",
         ["interpolate", "{run}", "--modes", "0,1", "--out", "{root}/new/a/x.png"], "x.png", code=0),
    Case(A, "evaluate --json into a missing directory: created",
         ["evaluate", "{run}", "--metrics", "purity", "--json", "{root}/new/b/m.json"], '"purity"', code=0),
    Case(A, "generate --out a new nested directory", ["generate", "{run}", "--n", "2", "--out", "{root}/new/c/d"],
         "2 images in", code=0),
    Case(A, "datasets info of a missing folder: said, not failed", ["datasets", "info", "{missing}"], "available: False", code=0),
    Case(A, "a config file written by selfcond 0.1", ["train", "--config", "{run}/config.yaml", "--dry-run"], "version: 2",
         code=0),
    Case(A, "assign the run's own images", ["assign", "{run}", "--out", "{root}/new/e/modes.csv"], '"n": 1797', code=0),
    Case(A, "export into a missing directory", ["export", "{run}", "{root}/new/f/g.pt", "--no-onnx"], "g.pt", code=0),
]


def run_case(world: World, case: Case):
    args = world.fmt(case.args)
    before = sorted(p.name for p in world.paths["empty"].iterdir()) if world.paths["empty"].exists() else []
    r = cli(*args)
    after = sorted(p.name for p in world.paths["empty"].iterdir()) if world.paths["empty"].exists() else []
    return r, [a for a in after if a not in before and a[:1].isdigit()]


def outcome(world: World, case: Case) -> tuple[bool, str]:
    """(as expected, what happened)."""
    r, new_runs = run_case(world, case)
    err = r.stderr.strip().splitlines()
    if "Traceback" in r.stderr:
        return False, "traceback"
    if (world.root / MARKER).exists():
        return False, "a pickle ran code"
    if case.code == 0:
        ok = r.returncode == 0 and case.expect.format(**world.paths) in r.stdout
        return ok, "done" if ok else f"exit {r.returncode}: {r.stderr[-300:]}"
    if r.returncode != case.code:
        return False, f"exit {r.returncode} (stdout {r.stdout[-200:]!r}, stderr {r.stderr[-300:]!r})"
    if len(err) != 1 or case.expect not in err[0]:
        return False, f"stderr {r.stderr!r}"
    if new_runs and case.args[0] == "train":
        return False, f"left run directories {new_runs}"
    return True, "refused in one line"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        from selfcond.data import cifar, mnist

        mp.setenv("SELFCOND_CACHE", str(root / "cache"))  # nothing cached to fall back on
        for name in mnist.MIRRORS:
            mp.setitem(mnist.MIRRORS, name, ["http://127.0.0.1:9/"])  # and no download
        mp.setattr(cifar, "MIRRORS", ["http://127.0.0.1:9/"])
        torch.set_num_threads(1)
        w = make_world(root)
        w.paths["root"] = root
        yield w


def _id(case: Case) -> str:
    return f"{case.kind}: {case.what}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_a_mistake_is_one_line_and_exit_2(world, case):
    if case.needs == "nocuda" and torch.cuda.is_available():
        pytest.skip("there is a GPU here")
    ok, what = outcome(world, case)
    assert ok, what


def test_there_are_at_least_150_inputs():
    assert len(CASES) >= 150


def table(results) -> str:
    """Markdown: inputs by kind, how many, and their outcome."""
    kinds: dict[str, list] = {}
    for case, ok, what in results:
        kinds.setdefault(case.kind, []).append((ok, what))
    lines = ["| kind | inputs | refused in one line (exit 2) | done (sensible) | not as expected |",
             "|---|---:|---:|---:|---:|"]
    for kind, rows in kinds.items():
        refused = sum(ok and w == "refused in one line" for ok, w in rows)
        done = sum(ok and w == "done" for ok, w in rows)
        lines.append(f"| {kind} | {len(rows)} | {refused} | {done} | {len(rows) - refused - done} |")
    total = len(results)
    bad = [(c, w) for c, ok, w in results if not ok]
    lines.append(f"| **all** | **{total}** | {sum(1 for _, ok, w in results if ok and w != 'done')} | "
                 f"{sum(1 for _, ok, w in results if ok and w == 'done')} | {len(bad)} |")
    return "\n".join(lines + [f"- not as expected: {_id(c)}: {w}" for c, w in bad])


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        from selfcond.data import cifar, mnist

        root = Path(tmp)
        mp.setenv("SELFCOND_CACHE", str(root / "cache"))
        for name in mnist.MIRRORS:
            mp.setitem(mnist.MIRRORS, name, ["http://127.0.0.1:9/"])
        mp.setattr(cifar, "MIRRORS", ["http://127.0.0.1:9/"])
        torch.set_num_threads(1)
        w = make_world(root)
        w.paths["root"] = root
        skip = torch.cuda.is_available()
        results = [(c, *outcome(w, c)) for c in CASES if not (c.needs == "nocuda" and skip)]
        print(table(results))

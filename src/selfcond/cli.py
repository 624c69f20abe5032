"""The `selfcond` command: one click group, each verb a thin call into the library.

Progress goes to stderr, results to stdout. A mistake is one line on stderr and a non-zero exit
code (2 for the user's input), never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from selfcond.errors import SelfcondError, UserError

MAX_IMAGES = 100_000  # images one `generate` call writes
MAX_GRID = 4096  # images in one grid PNG

# Flags of `train` and the config keys they set (None = not given, keep the config's value).
TRAIN_FLAGS = {
    "data": "data.name", "data_dir": "data.data_dir", "method": "method.name", "k": "method.k",
    "steps": "train.steps", "batch": "train.batch", "seed": "train.seed", "device": "train.device",
    "threads": "train.threads", "snapshot_every": "train.snapshot_every", "nan_retry": "train.nan_retry",
    "arch": "model.arch", "resolution": "data.resolution", "augment": "train.augment", "minutes": "train.minutes",
}


class _Main(click.Group):
    """The root group; `bench` is loaded only when asked for (its verbs import their modules)."""

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), "bench"])

    def get_command(self, ctx, name):
        if name == "bench":
            from selfcond.bench import group

            return group
        return super().get_command(ctx, name)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selfcond")
def cli():
    """Unsupervised conditional GANs that find the modes of unlabeled data."""


@cli.command()
@click.option("--data", help="dataset name (ring, grid, digits, mnist, ...) or a directory of images (default digits)")
@click.option("--data-dir", help="directory holding the dataset's files")
@click.option("--method", help="training method (default scgan); `selfcond methods` lists them")
@click.option("--k", type=int, help="number of modes/clusters")
@click.option("--arch", help="net family: dcgan, dcgan-deep, resnet, stylegan2 (images), mlp (2D)")
@click.option("--resolution", type=int, help="image side: 28, 32, 64, 128, 256 (what the family supports)")
@click.option("--augment", help="DiffAugment of D's inputs: color,translation,cutout")
@click.option("--minutes", type=float, help="stop after this many minutes of training, with a snapshot")
@click.option("--steps", type=int, help="total training steps")
@click.option("--batch", type=int, help="batch size")
@click.option("--seed", type=int, help="seed for everything")
@click.option("--device", help="auto, cpu, cuda or cuda:N")
@click.option("--threads", type=int, help="torch CPU threads (0 = torch default)")
@click.option("--snapshot-every", type=int, help="steps between snapshots")
@click.option("--nan-retry", type=int, help="on NaN/inf, roll back to the last checkpoint with half the lr, N times")
@click.option("--out", default="runs", show_default=True, help="parent of the run directory")
@click.option("--preset", help="a named configuration of the papers (see `selfcond presets`); YAML and flags override it")
@click.option("--config", "config_file", help="YAML config; flags override it")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="any config key, e.g. train.lr=2e-4")
@click.option("--resume", help="run directory (or checkpoint file) to continue, or 'latest' (newest under --out)")
@click.option("--dry-run", is_flag=True, help="print the resolved config and exit")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(preset, config_file, sets, resume, dry_run, quiet, out, **flags):
    """Train a GAN; writes a numbered run directory under --out."""
    from selfcond import config as cfgmod
    from selfcond import train as training

    from selfcond.atomic import atomic_write
    from selfcond.train import dist

    overrides = {TRAIN_FLAGS[k]: v for k, v in flags.items() if v is not None}
    overrides.update(cfgmod.parse_sets(sets))
    marker = dist.restart_marker(out)  # torchrun: the run this job started, for --max-restarts
    if not resume and dist.restarted() and marker is not None and marker.is_file():
        resume = marker.read_text().strip()
        click.echo(f"torchrun restarted the job: resuming {resume}", err=True)
    if resume:
        if config_file or preset:
            raise UserError("--config or --preset and --resume do not go together: a resumed run keeps its own config")
        plan = training.plan_resume(resume, overrides, out)
        for note in plan.notes:
            click.echo(note, err=True)
        if dry_run:
            click.echo(cfgmod.to_yaml(plan.cfg), nl=False)
            return
        trainer = training.resume(plan)
    else:
        user = cfgmod.load_yaml(config_file) if config_file else {}
        if preset:
            user = cfgmod.merge(cfgmod.named_preset(preset), user if isinstance(user, dict) else {})
        cfg = cfgmod.resolve(user, overrides)
        if dry_run:
            click.echo(cfgmod.to_yaml(cfg), nl=False)
            return
        trainer = training.start_run(cfg, out)
        if marker is not None and trainer.world.main:
            atomic_write(marker, str(trainer.run_dir))
    main = trainer.world.main
    if main:
        click.echo(f"run directory: {trainer.run_dir}" + (f" ({trainer.world.size} ranks)" if trainer.world.size > 1
                                                            else ""), err=True)
    trainer.train(progress=not quiet and main)
    if main:
        metrics = trainer.last_metrics or {"step": trainer.step, **trainer.evaluate(snapshot=True)}
        click.echo(json.dumps({"run": str(trainer.run_dir), **metrics}))
    dist.close()


@cli.command()
def presets():
    """The papers' own configurations, for `selfcond train --preset NAME`."""
    from selfcond.config import NAMED_PRESETS

    for name, (summary, _) in NAMED_PRESETS.items():
        click.echo(f"{name}\n    {summary}")


@cli.command()
def methods():
    """The training methods, with one line each."""
    from selfcond.partition import METHODS

    for m in sorted(METHODS, key=lambda m: m.name):
        click.echo(f"{m.name:8s} {m.summary}")


def _parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> seeds."""
    seeds = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = (int(v) for v in part.split("-", 1))
                if b - a + 1 + len(seeds) > MAX_IMAGES:
                    raise UserError(f"--seeds {text} names more than {MAX_IMAGES:,} images, the most one call "
                                    "writes: split the seeds over several calls")
                seeds += list(range(a, b + 1))
            elif part.strip():
                seeds.append(int(part))
    except ValueError:
        raise UserError(f"--seeds expects a list like 0-63 or 1,5,9, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds must name seeds >= 0, got {text!r}")
    return seeds


def _load(run: str, device: str):
    from selfcond.api import load

    return load(run, device=device)


def _file_out(path: Path, option: str) -> Path:
    """`path` as a file to write: its directory is created; an existing directory is refused."""
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{option} {path}: {path.parent} exists and is not a directory") from None
    return path


def _dir_out(path: Path, option: str) -> Path:
    """`path` as a directory to write into (created); an existing file is refused."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{option} {path} is a file, not a directory; give a directory") from None
    return path


@cli.command()
@click.argument("run")
@click.option("--mode", help="a mode number, or 'all' (every live mode); default: modes drawn from π")
@click.option("--seeds", help="seeds to draw, e.g. 0-63 or 1,5,9 (default 0..n-1)")
@click.option("--n", type=click.IntRange(1, MAX_IMAGES), default=16, show_default=True, help="images when no --seeds")
@click.option("--grid", is_flag=True, help="write one grid PNG instead of one PNG per image")
@click.option("--out", help="output directory (default RUN/generated)")
@click.option("--device", default="auto", show_default=True)
def generate(run, mode, seeds, n, grid, out, device):
    """Images from a trained run: PNG per seed (modeMM/seedSSSS.png) or one grid."""
    import torch

    from selfcond.atomic import atomic_write
    from selfcond.viz.grid import mode_grid_png

    seed_list = _parse_seeds(seeds) if seeds else list(range(n))
    if len(seed_list) > MAX_IMAGES:
        raise UserError(f"{len(seed_list):,} images asked for; one call writes at most {MAX_IMAGES:,} "
                        "(split the seeds over several calls)")
    model = _load(run, device)
    if mode == "all":
        if not model.conditional:
            raise UserError(f"run {run} is unconditional ({model.cfg.method.name}): it has no modes")
        modes = model.live_modes
    elif mode is not None:
        try:
            modes = [int(mode)]
        except ValueError:
            raise UserError(f"--mode expects a number or 'all', got {mode!r}") from None
    else:
        modes = [None]
    total = len(modes) * len(seed_list)
    if total > (MAX_GRID if grid else MAX_IMAGES):
        raise UserError(f"{len(modes)} mode(s) x {len(seed_list)} seeds = {total:,} images; "
                        f"{'a grid holds' if grid else 'one call writes'} at most "
                        f"{MAX_GRID if grid else MAX_IMAGES:,}: give fewer seeds or one --mode")
    out_dir = _dir_out(Path(out) if out else model.run_dir / "generated", "--out")
    rows, names, written = [], [], 0
    for m in modes:
        x, y = model.generate(mode=m, seeds=seed_list)
        if grid:
            rows.append(x)
            names.append("π" if m is None else f"mode {m}")
            continue
        for img, s, ym in zip(x, seed_list, y.tolist()):
            sub = out_dir / f"mode{ym:02d}" if model.conditional else out_dir
            sub.mkdir(exist_ok=True)
            atomic_write(sub / f"seed{s:04d}.png", mode_grid_png(img[None, None]))
            written += 1
    if grid:
        name = f"grid-mode{mode if mode is not None else 'pi'}-seeds{seed_list[0]}-{seed_list[-1]}.png"
        atomic_write(out_dir / name, mode_grid_png(torch.stack(rows), names if len(rows) > 1 else None))
        click.echo(str(out_dir / name))
    else:
        click.echo(f"{written} images in {out_dir}")


@cli.command()
@click.argument("run")
@click.option("--modes", required=True, help="2 modes (a strip) or 4 modes (a sheet), e.g. 2,7")
@click.option("--steps", type=click.IntRange(2, 64), default=8, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--rows", type=click.IntRange(1, 64), default=4, show_default=True, help="noise rows of a strip")
@click.option("--out", help="PNG file (default RUN/interpolate-A-B.png)")
@click.option("--device", default="auto", show_default=True)
def interpolate(run, modes, steps, seed, rows, out, device):
    """Convex combinations of mode codes: A -> B strips, or a 2D sheet between four modes."""
    from selfcond.atomic import atomic_write
    from selfcond.viz.grid import mode_grid_png

    try:
        ms = [int(m) for m in modes.split(",")]
    except ValueError:
        raise UserError(f"--modes expects numbers like 2,7, got {modes!r}") from None
    if out:
        _file_out(Path(out), "--out")  # before the work, not after it
    model = _load(run, device)
    sheet = model.interpolate(ms, steps=steps, seed=seed, rows=rows)
    path = _file_out(Path(out) if out else model.run_dir / f"interpolate-{'-'.join(map(str, ms))}.png", "--out")
    atomic_write(path, mode_grid_png(sheet))
    click.echo(str(path))


@cli.command()
@click.argument("run")
@click.option("--metrics", help="comma-separated metric names or keys (default: all that apply)")
@click.option("--n", type=click.IntRange(1, 1_000_000), help="samples (default train.eval_samples)")
@click.option("--json", "json_path", help="also write the result to this file")
@click.option("--device", default="auto", show_default=True)
def evaluate(run, metrics, n, json_path, device):
    """Compute metrics of a run; appends to RUN/metrics.jsonl and prints one JSON line."""
    from selfcond.atomic import write_json

    if json_path:
        _file_out(Path(json_path), "--json")
    model = _load(run, device)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    result = model.evaluate(names, n, progress=True)
    if json_path:
        write_json(json_path, result)
    click.echo(json.dumps(result))


@cli.command()
@click.argument("run")
@click.argument("data", required=False)
@click.option("--split", type=click.Choice(["train", "test"]), help="the dataset's split (default: train)")
@click.option("--data-dir", help="directory holding the dataset's files")
@click.option("--out", help="CSV file (default RUN/assign-DATA.csv)")
@click.option("--grid", is_flag=True, help="also a PNG beside the CSV: each mode's images, one row per mode")
@click.option("--quantile", type=click.FloatRange(0, 1, max_open=True), default=0.01, show_default=True,
              help="outliers: images fitting worse than this share of the run's training images")
@click.option("--threshold", type=float, help="outliers: images whose fit is below this (instead of --quantile)")
@click.option("--device", default="auto", show_default=True)
def assign(run, data, split, data_dir, out, grid, quantile, threshold, device):
    """Label every image of DATA (a dataset name, a folder; default the run's own data) with its mode:
    a CSV of mode, fit, probability and outlier per image."""
    from selfcond.assign import assign_data

    result = assign_data(_load(run, device), data, split=split, data_dir=data_dir, out=out, grid=grid,
                         quantile=quantile, threshold=threshold)
    click.echo(json.dumps(result))


@cli.command("export")
@click.argument("run")
@click.argument("out", required=False)
@click.option("--onnx/--no-onnx", default=None, help="also OUT.onnx (default: when the onnx package is installed)")
def export_cmd(run, out, onnx):
    """G's moving average, π and the mode codes as one TorchScript file (default RUN/generator.pt)
    that torch.jit.load runs without selfcond."""
    from selfcond.export import export

    model = _load(run, "cpu")
    for path in export(model, Path(out) if out else model.run_dir / "generator.pt", onnx=onnx):
        click.echo(str(path))


@cli.command()
@click.argument("run")
def report(run):
    """(Re)write RUN/report.html from the run's files."""
    from selfcond.report import write_report

    if not Path(run).is_dir():
        raise UserError(f"run directory not found: {run}")
    if not (Path(run) / "config.yaml").is_file():
        raise UserError(f"{run} is not a run directory (it has no config.yaml)")
    click.echo(str(write_report(run)))


@cli.group(invoke_without_command=True)
@click.pass_context
def datasets(ctx):
    """What datasets are available."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(datasets_list)


@datasets.command("list")
@click.option("--data-dir", help="also look here")
def datasets_list(data_dir=None):
    """Dataset names, marked by whether their files are here."""
    from selfcond import data

    for name in data.names():
        click.echo(f"{name:16s} {'available' if data.available(name, data_dir) else 'not found locally'}")


@datasets.command("info")
@click.argument("name")
@click.option("--data-dir", help="also look here")
def datasets_info(name, data_dir):
    """Where a dataset was found (or looked for), its size, shape and classes."""
    from selfcond import data

    for key, value in data.info(name, data_dir).items():
        if isinstance(value, (list, tuple)) and value and key == "searched":
            value = "\n  " + "\n  ".join(map(str, value))
        click.echo(f"{key}: {value}")


@datasets.command("prepare")
@click.argument("src")
@click.argument("out")
@click.option("--resolution", type=int, required=True, help="side of the square images written")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="decoding threads")
def datasets_prepare(src, out, resolution, workers):
    """Convert a directory (or zip) of images into OUT.zip once: center-cropped, resized, PNG,
    StyleGAN2-ADA's layout with dataset.json labels; train on it with --data OUT.zip."""
    from selfcond.data.prepare import prepare

    rec = prepare(src, out, resolution, workers)
    click.echo(json.dumps({k: (len(v) if k == "skipped" else v) for k, v in rec.items()}))


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="selfcond", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:  # one line, like every other mistake; --help has the rest
        where = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{where}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except SelfcondError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)

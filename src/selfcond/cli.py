"""The `selfcond` command: one click group, each verb a thin call into the library.

Progress goes to stderr, results to stdout. A user mistake is one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from selfcond import config as cfgmod
from selfcond.errors import UserError

# Flags of `train` and the config keys they set (None = not given, keep the config's value).
TRAIN_FLAGS = {
    "data": "data.name", "data_dir": "data.data_dir", "method": "method.name", "k": "method.k",
    "steps": "train.steps", "batch": "train.batch", "seed": "train.seed", "device": "train.device",
    "threads": "train.threads", "snapshot_every": "train.snapshot_every", "nan_retry": "train.nan_retry",
}
# Keys that may differ when resuming a run: they do not change what has been trained so far.
RESUMABLE_KEYS = {"train.steps", "train.device", "train.threads", "train.snapshot_every",
                  "train.log_every", "train.eval_samples", "train.metrics", "train.nan_retry", "train.keep_checkpoints",
                  "train.ema"}


def _parse_set(pairs) -> dict:
    """`--set train.lr=2e-4` -> {"train.lr": 0.0002}; values parsed as YAML scalars."""
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selfcond")
def cli():
    """Unsupervised conditional GANs that find the modes of unlabeled data."""


@cli.command()
@click.option("--data", help="dataset name: ring, grid, digits, ... (default digits)")
@click.option("--data-dir", help="directory holding the dataset's files")
@click.option("--method", type=click.Choice(cfgmod.METHODS), help="training method (default scgan)")
@click.option("--k", type=int, help="number of modes/clusters")
@click.option("--steps", type=int, help="total training steps")
@click.option("--batch", type=int, help="batch size")
@click.option("--seed", type=int, help="seed for everything")
@click.option("--device", help="auto, cpu, cuda or cuda:N")
@click.option("--threads", type=int, help="torch CPU threads (0 = torch default)")
@click.option("--snapshot-every", type=int, help="steps between snapshots")
@click.option("--nan-retry", type=int, help="on NaN/inf, roll back to the last checkpoint with half the lr, N times")
@click.option("--out", default="runs", show_default=True, help="parent of the run directory")
@click.option("--config", "config_file", help="YAML config; flags override it")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="any config key, e.g. train.lr=2e-4")
@click.option("--resume", help="run directory to continue, or 'latest' (newest under --out)")
@click.option("--dry-run", is_flag=True, help="print the resolved config and exit")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(config_file, sets, resume, dry_run, quiet, out, **flags):
    """Train a GAN; writes a numbered run directory under --out."""
    from selfcond.train import io
    from selfcond.train.loop import Trainer, start_run

    overrides = {TRAIN_FLAGS[k]: v for k, v in flags.items() if v is not None}
    overrides.update(_parse_set(sets))
    if resume:
        from selfcond.api import find_run

        run_dir = find_run(resume, out)
        state = io.load_checkpoint(run_dir)
        saved = state["config"]
        cfg = cfgmod.resolve(cfgmod.merge(saved, cfgmod.tree_of(overrides)))  # unknown keys fail here
        # A checkpoint from an older version lacks the keys added since: they take today's
        # defaults, which is not a change the user asked for.
        before = cfgmod.flat_of(cfgmod.resolve(saved).to_dict())
        added = sorted(set(before) - set(cfgmod.flat_of(saved)) - set(overrides))
        if added:
            click.echo(f"note: the checkpoint predates {', '.join(added)}; "
                       f"using {', '.join(f'{k}={before[k]}' for k in added)}", err=True)
        changed = {k for k, v in cfgmod.flat_of(cfg.to_dict()).items() if before.get(k) != v}
        changed -= RESUMABLE_KEYS
        if changed:
            raise UserError(f"cannot change {', '.join(sorted(changed))} when resuming "
                            f"(only {', '.join(sorted(RESUMABLE_KEYS))} may change)")
        if dry_run:
            click.echo(cfgmod.to_yaml(cfg), nl=False)
            return
        trainer = Trainer(cfg, run_dir)
        trainer.load_state_dict(state)
        io.atomic_write(run_dir / "config.yaml", cfgmod.to_yaml(cfg))
    else:
        from selfcond import data

        user = cfgmod.load_yaml(config_file) if config_file else {}
        cfg = cfgmod.resolve(user, overrides)
        data.check_name(cfg.data.name)
        if dry_run:
            click.echo(cfgmod.to_yaml(cfg), nl=False)
            return
        trainer = start_run(cfg, out)
    click.echo(f"run directory: {trainer.run_dir}", err=True)
    trainer.train(progress=not quiet)
    metrics = trainer.last_metrics or {"step": trainer.step, **trainer.evaluate(snapshot=True)}
    click.echo(json.dumps({"run": str(trainer.run_dir), **metrics}))


def _parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,9' or '0-3,10' -> seeds."""
    seeds = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                seeds += list(range(int(a), int(b) + 1))
            elif part.strip():
                seeds.append(int(part))
    except ValueError:
        raise UserError(f"--seeds expects a list like 0-63 or 1,5,9, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise UserError(f"--seeds must name seeds >= 0, got {text!r}")
    return seeds


def _load(run: str, device: str):
    from selfcond.api import load

    if not Path(run).exists():
        raise UserError(f"run not found: {run}")
    return load(run, device=device)


@cli.command()
@click.argument("run")
@click.option("--mode", help="a mode number, or 'all' (every live mode); default: modes drawn from π")
@click.option("--seeds", help="seeds to draw, e.g. 0-63 or 1,5,9 (default 0..n-1)")
@click.option("--n", type=click.IntRange(min=1), default=16, show_default=True, help="images when no --seeds")
@click.option("--grid", is_flag=True, help="write one grid PNG instead of one PNG per image")
@click.option("--out", help="output directory (default RUN/generated)")
@click.option("--device", default="auto", show_default=True)
def generate(run, mode, seeds, n, grid, out, device):
    """Images from a trained run: PNG per seed (modeMM/seedSSSS.png) or one grid."""
    import torch

    from selfcond.train.io import atomic_write
    from selfcond.viz.grid import mode_grid_png

    model = _load(run, device)
    seed_list = _parse_seeds(seeds) if seeds else list(range(n))
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
    out_dir = Path(out) if out else Path(run) / "generated"
    out_dir.mkdir(parents=True, exist_ok=True)
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
@click.option("--steps", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rows", type=click.IntRange(min=1), default=4, show_default=True, help="noise rows of a strip")
@click.option("--out", help="PNG file (default RUN/interpolate-A-B.png)")
@click.option("--device", default="auto", show_default=True)
def interpolate(run, modes, steps, seed, rows, out, device):
    """Convex combinations of mode codes: A -> B strips, or a 2D sheet between four modes."""
    from selfcond.train.io import atomic_write
    from selfcond.viz.grid import mode_grid_png

    try:
        ms = [int(m) for m in modes.split(",")]
    except ValueError:
        raise UserError(f"--modes expects numbers like 2,7, got {modes!r}") from None
    model = _load(run, device)
    sheet = model.interpolate(ms, steps=steps, seed=seed, rows=rows)
    path = Path(out) if out else Path(run) / f"interpolate-{'-'.join(map(str, ms))}.png"
    atomic_write(path, mode_grid_png(sheet))
    click.echo(str(path))


@cli.command()
@click.argument("run")
@click.option("--metrics", help="comma-separated metric names or keys (default: all that apply)")
@click.option("--n", type=click.IntRange(min=1), help="samples (default train.eval_samples)")
@click.option("--json", "json_path", help="also write the result to this file")
@click.option("--device", default="auto", show_default=True)
def evaluate(run, metrics, n, json_path, device):
    """Compute metrics of a run; appends to RUN/metrics.jsonl and prints one JSON line."""
    from selfcond.api import write_json

    model = _load(run, device)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    result = model.evaluate(names, n, progress=True)
    if json_path:
        write_json(json_path, result)
    click.echo(json.dumps(result))


@cli.command()
@click.argument("run")
def report(run):
    """(Re)write RUN/report.html from the run's files."""
    from selfcond.report import write_report

    if not Path(run).is_dir():
        raise UserError(f"run directory not found: {run}")
    click.echo(str(write_report(run)))


@cli.group()
def bench():
    """The papers' experiments as commands that print and write tables."""


def _write_json(path: str | None, records) -> None:
    if path:
        from selfcond.train.io import atomic_write

        atomic_write(path, json.dumps(records, indent=1) + "\n")


@bench.command("2d")
@click.option("--data", "datasets", default="ring,grid", show_default=True, help="comma-separated: ring, grid")
@click.option("--methods", default="gan,pacgan,mbd,scgan,cgan", show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="trial t uses seed + t")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="parallel trials")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="config override for every trial")
@click.option("--json", "json_path", help="write the records here")
def bench_2d(datasets, methods, trials, steps, seed, jobs, sets, json_path):
    """Table 1 of Self-Conditioned GAN: modes, high-quality share and reverse KL on 2D mixtures."""
    from selfcond.bench import toy2d

    ds = [d.strip() for d in datasets.split(",") if d.strip()]
    for d in ds:
        if d not in cfgmod.TOY_DATASETS:
            raise UserError(f"bench 2d: unknown dataset {d!r} (use ring, grid)")
    ms = [m.strip() for m in methods.split(",") if m.strip()]
    # The JSON file is rewritten after every trial, so an interrupted table keeps what it measured.
    records = toy2d.run(ds, ms, trials, steps, seed=seed, jobs=jobs, overrides=_parse_set(sets),
                        on_record=lambda recs: _write_json(json_path, recs))
    click.echo(toy2d.markdown(records))


def _bench_device(name: str) -> str:
    from selfcond.train.loop import resolve_device

    return str(resolve_device(name))  # "cuda" without CUDA: one clear line, not a traceback


@bench.command("kmeans")
@click.option("--n", type=int, default=25000, show_default=True)
@click.option("--d", type=int, default=2048, show_default=True)
@click.option("--k", type=int, default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, help="torch and scikit-learn threads (default: all cores)")
@click.option("--n-init", type=int, default=3, show_default=True, help="our k-means++ restarts")
@click.option("--seed-dims", type=int, default=64, show_default=True,
              help="seed in the top principal directions (0: exact k-means++ as scikit-learn)")
@click.option("--device", default="cpu", show_default=True, help="where ours runs (cpu, cuda, cuda:N)")
@click.option("--json", "json_path", help="write the record here")
def bench_kmeans(n, d, k, seed, threads, n_init, seed_dims, device, json_path):
    """Our k-means step beside scikit-learn's KMeans(n_init=10), on the same features."""
    from selfcond.bench import kmeans_speed

    rec = kmeans_speed.run_kmeans_speed(n=n, d=d, k=k, seed=seed, device=_bench_device(device),
                                        threads=threads, n_init=n_init, seed_dims=seed_dims or None)
    _write_json(json_path, [rec])
    click.echo(kmeans_speed.format_markdown(rec))


@bench.command("stacked-mnist")
@click.option("--methods", default="gan,scgan", show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--data-dir", help="directory with MNIST's IDX files (else the usual search order)")
@click.option("--seed", type=int, default=0, show_default=True, help="trial t uses seed + t")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="parallel trials")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="config override for every trial")
@click.option("--out", help="keep each trial's run directory under this folder")
@click.option("--json", "json_path", help="write the records here (after every trial)")
def bench_stacked(methods, trials, steps, data_dir, seed, jobs, sets, out, json_path):
    """Table 2 of Self-Conditioned GAN: Stacked MNIST modes (of 1000) and reverse KL."""
    from selfcond.bench import stacked

    ms = [m.strip() for m in methods.split(",") if m.strip()]
    records = stacked.run(ms, trials, steps, data_dir, seed=seed, jobs=jobs, overrides=_parse_set(sets),
                          out=out, on_record=lambda recs: _write_json(json_path, recs))
    click.echo(stacked.markdown(records))


@bench.command("clusters")
@click.option("--data", "datasets", default="mnist,fashion-mnist", show_default=True)
@click.option("--methods", default="scgan,micgan", show_default=True)
@click.option("--k", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=cfgmod.METHOD_PRESETS["micgan"]["train"]["steps"],
              show_default=True, help="every method's budget (default: MIC-GANs' whole default schedule)")
@click.option("--data-dir", "data_dirs", multiple=True, metavar="[NAME=]DIR",
              help="where a dataset's files are, e.g. mnist=/data/mnist (repeatable; a bare DIR applies to all)")
@click.option("--seed", type=int, default=0, show_default=True, help="trial t uses seed + t")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="parallel trials")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="config override for every trial")
@click.option("--out", help="keep each trial's run directory under this folder")
@click.option("--json", "json_path", help="write the records here (after every trial)")
def bench_clusters(datasets, methods, k, trials, steps, data_dirs, seed, jobs, sets, out, json_path):
    """Table 1 of MIC-GANs: purity, NMI, ARI, modes found and fid_cls of the discovered modes."""
    from selfcond.bench import clusters

    ds = [d.strip() for d in datasets.split(",") if d.strip()]
    ms = [m.strip() for m in methods.split(",") if m.strip()]
    data_dir = {}
    for item in data_dirs:
        name, sep, path = item.rpartition("=")
        data_dir[name if sep else None] = path
    unknown = sorted(set(data_dir) - set(ds) - {None})
    if unknown:
        raise UserError(f"--data-dir names {', '.join(unknown)}, which --data does not list")
    records = clusters.run(ds, ms, k, trials, steps, data_dir, seed=seed, jobs=jobs,
                           overrides=_parse_set(sets), out=out, on_record=lambda recs: _write_json(json_path, recs))
    click.echo(clusters.markdown(records))


@bench.command("gibbs")
@click.option("--n", type=int, default=60000, show_default=True)
@click.option("--d", type=int, default=15, show_default=True)
@click.option("--k", type=int, default=15, show_default=True)
@click.option("--sweeps", type=int, default=3, show_default=True)
@click.option("--block", type=click.IntRange(min=0), default=0, show_default=True,
              help="points per block of our fast sweep; 0 = the library default, n / 16")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--device", default="cpu", show_default=True,
              help="where ours runs (cpu, cuda, cuda:N); the published loop runs on the CPU")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="timed runs of our fast sweep (the median is reported)")
@click.option("--json", "json_path", help="write the record here")
def bench_gibbs(n, d, k, sweeps, block, seed, threads, device, repeats, json_path):
    """Our Gibbs sweeps beside the published MIC-GANs per-image loop, on the same embeddings."""
    from selfcond.bench import gibbs_speed

    rec = gibbs_speed.run_gibbs_speed(n=n, d=d, k=k, sweeps=sweeps, seed=seed, threads=threads, block=block,
                                      device=_bench_device(device), repeats=repeats)
    _write_json(json_path, [rec])
    click.echo(gibbs_speed.format_markdown(rec))


@bench.command("gibbs-blocks")
@click.option("--n", type=int, default=4000, show_default=True)
@click.option("--blocks", default="1,64,256,512", show_default=True,
              help="block sizes of the fast sweep; 1 runs the exact sequential sampler")
@click.option("--sweeps", type=int, default=100, show_default=True)
@click.option("--burn", type=int, default=50, show_default=True, help="sweeps before scoring starts")
@click.option("--chains", type=int, default=4, show_default=True, help="chains per block size")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", help="write the record here")
def bench_gibbs_blocks(n, blocks, sweeps, burn, chains, seed, json_path):
    """What the fast sweep's blocks cost in accuracy, beside the exact sampler."""
    from selfcond.bench import gibbs_speed

    try:
        sizes = [int(b) for b in blocks.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--blocks expects numbers like 1,64,256, got {blocks!r}") from None
    try:
        rec = gibbs_speed.run_block_accuracy(n=n, blocks=sizes, sweeps=sweeps, burn=burn, chains=chains,
                                             seed=seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    _write_json(json_path, [rec])
    click.echo(gibbs_speed.format_block_accuracy(rec))


@bench.command("snapshot")
@click.option("--data", default="digits", show_default=True)
@click.option("--steps", type=int, default=200, show_default=True, help="training steps timed")
@click.option("--snapshots", type=int, default=5, show_default=True, help="snapshots timed (median)")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--json", "json_path", help="write the record here")
def bench_snapshot(data, steps, snapshots, threads, sets, json_path):
    """Seconds per checkpoint and per snapshot, and their share of training time."""
    from selfcond.bench import overhead

    rec = overhead.run_overhead(data, steps, snapshots, threads, _parse_set(sets))
    _write_json(json_path, [rec])
    click.echo(overhead.format_markdown(rec))


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


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="selfcond", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except UserError as e:
        from selfcond.train.loop import Interrupted

        click.echo(f"error: {e}", err=True)
        sys.exit(130 if isinstance(e, Interrupted) else 2)

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
    "threads": "train.threads", "snapshot_every": "train.snapshot_every",
}
# Keys that may differ when resuming a run: they do not change what has been trained so far.
RESUMABLE_KEYS = {"train.steps", "train.device", "train.threads", "train.snapshot_every",
                  "train.log_every", "train.eval_samples", "train.metrics"}


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
@click.option("--out", default="runs", show_default=True, help="parent of the run directory")
@click.option("--config", "config_file", help="YAML config; flags override it")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="any config key, e.g. train.lr=2e-4")
@click.option("--resume", help="run directory to continue")
@click.option("--dry-run", is_flag=True, help="print the resolved config and exit")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(config_file, sets, resume, dry_run, quiet, out, **flags):
    """Train a GAN; writes a numbered run directory under --out."""
    from selfcond.train import io
    from selfcond.train.loop import Trainer, start_run

    overrides = {TRAIN_FLAGS[k]: v for k, v in flags.items() if v is not None}
    overrides.update(_parse_set(sets))
    if resume:
        run_dir = Path(resume)
        state = io.load_checkpoint(run_dir)
        saved = state["config"]
        cfg = cfgmod.resolve(cfgmod.merge(saved, cfgmod.tree_of(overrides)))  # unknown keys fail here
        before = cfgmod.flat_of(saved)
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
        user = cfgmod.load_yaml(config_file) if config_file else {}
        cfg = cfgmod.resolve(user, overrides)
        if dry_run:
            click.echo(cfgmod.to_yaml(cfg), nl=False)
            return
        trainer = start_run(cfg, out)
    click.echo(f"run directory: {trainer.run_dir}", err=True)
    trainer.train(progress=not quiet)
    click.echo(json.dumps({"run": str(trainer.run_dir), "step": trainer.step, **trainer.evaluate()}))


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


@bench.command("kmeans")
@click.option("--n", type=int, default=25000, show_default=True)
@click.option("--d", type=int, default=2048, show_default=True)
@click.option("--k", type=int, default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, help="torch and scikit-learn threads (default: all cores)")
@click.option("--n-init", type=int, default=3, show_default=True, help="our k-means++ restarts")
@click.option("--seed-dims", type=int, default=64, show_default=True,
              help="seed in the top principal directions (0: exact k-means++ as scikit-learn)")
@click.option("--json", "json_path", help="write the record here")
def bench_kmeans(n, d, k, seed, threads, n_init, seed_dims, json_path):
    """Our k-means step beside scikit-learn's KMeans(n_init=10), on the same features."""
    from selfcond.bench import kmeans_speed

    rec = kmeans_speed.run_kmeans_speed(n=n, d=d, k=k, seed=seed, threads=threads, n_init=n_init,
                                        seed_dims=seed_dims or None)
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


@cli.group(invoke_without_command=True)
@click.pass_context
def datasets(ctx):
    """What datasets are available."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(datasets_list)


@datasets.command("list")
def datasets_list():
    from selfcond import data

    for name in data.names():
        click.echo(name)


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

"""`bench export`: the exported TorchScript generator beside `selfcond generate`'s sampling, on
the same seeds: seconds for n images (medians of `repeats`), and whether the images are the same."""

from __future__ import annotations

import statistics
import time
import warnings

import click
import torch

from selfcond.bench.runner import bench_command, saver


def run(run_dir: str, n: int = 10000, repeats: int = 3, threads: int | None = None) -> dict:
    import selfcond
    from selfcond.export import build

    if threads:
        torch.set_num_threads(threads)
    model = selfcond.load(run_dir, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        g = build(model)
    seeds = list(range(n))

    def timed(fn):
        out, secs = None, []
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            secs.append(time.perf_counter() - t)
        return out, statistics.median(secs)

    (x, y), t_generate = timed(lambda: model.generate(seeds=seeds))
    z = torch.stack([torch.randn(model.cfg.model.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        xe, t_forward = timed(lambda: g(z, y))
        _, t_sample = timed(lambda: g.sample(n))
    return {"bench": "export", "run": str(run_dir), "n": n, "repeats": repeats, "threads": torch.get_num_threads(),
            "generate_seconds": round(t_generate, 3), "exported_seconds": round(t_forward, 3),
            "exported_sample_seconds": round(t_sample, 3), "same_images": bool(torch.equal(x, xe)),
            "max_difference": float((x - xe).abs().max())}


def markdown(rec: dict) -> str:
    return "\n".join([
        f"{rec['n']} images of {rec['run']}, median of {rec['repeats']}, {rec['threads']} thread(s)",
        "",
        "| sampler | seconds | images |",
        "|---|---:|---|",
        f"| `selfcond.load(run).generate(seeds)` (what `selfcond generate` draws) | {rec['generate_seconds']} | |",
        f"| exported `g(z, mode)`, z and modes of the same seeds | {rec['exported_seconds']} | "
        f"{'the same, bit for bit' if rec['same_images'] else 'differ by ' + format(rec['max_difference'], '.3g')} |",
        f"| exported `g.sample(n)` | {rec['exported_sample_seconds']} | modes from π, torch's global RNG |"])


@bench_command("export")
@click.argument("run_dir", metavar="RUN")
@click.option("--n", type=click.IntRange(1, 1_000_000), default=10000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--json", "json_path", help="write the record here")
def command(run_dir, n, repeats, threads, json_path):
    """The exported generator beside `selfcond generate`, on the same seeds."""
    save = saver(json_path)  # a bad --json fails now, not after the work
    rec = run(run_dir, n, repeats, threads)
    save([rec])
    click.echo(markdown(rec))

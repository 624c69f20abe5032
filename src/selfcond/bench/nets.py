"""`bench nets`: what each net family costs on this machine: training images/s of Self-Conditioned
GAN steps and the peak memory of the process, per family and resolution, each in a process of its
own (one torch thread unless --threads), on random RGB images held in memory."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from selfcond.bench.runner import bench_command, names, saver

FAMILIES = ("dcgan", "dcgan-deep", "resnet", "resnet-sngan", "stylegan2")

_WORKER = r"""
import json, resource, sys, time
import torch
from selfcond import data
from selfcond.config import resolve
from selfcond.data.base import DatasetSpec, ImageOptions
from selfcond.data.images import ImageDataset
from selfcond.train import Trainer

arch, res, batch, seconds, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (2048, 3, res, res), dtype=torch.uint8, generator=g)
data.register(DatasetSpec("noise", "images", ImageOptions, load=lambda o: ImageDataset("noise", images),
                          available=lambda d=None: True, info=lambda d=None: {}))
over = {"data.name": "noise", "data.resolution": res, "method.name": "scgan", "method.k": 10,
        "method.cluster_samples": 1000, "method.recluster_every": 10**6, "train.batch": batch, "train.threads": threads}
if arch == "resnet-sngan":
    over.update({"model.arch": "resnet", "model.variant": "sngan"})
else:
    over["model.arch"] = arch
t = Trainer(resolve(overrides=over))
t.start()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t.train_step()  # warm-up: first-call allocations and kernel choices
start, steps = time.perf_counter(), 0
while time.perf_counter() - start < seconds or steps < 2:
    t.train_step()
    steps += 1
elapsed = time.perf_counter() - start
params = sum(p.numel() for p in t.G.parameters()), sum(p.numel() for p in t.D.parameters())
print(json.dumps({"family": arch, "resolution": res, "batch": batch, "threads": threads, "steps": steps,
                  "seconds": round(elapsed, 2), "images_per_s": round(steps * batch / elapsed, 1),
                  "step_ms": round(1000 * elapsed / steps, 1), "g_params": params[0], "d_params": params[1],
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "rss_before_training_mb": round(base / 1024, 1)}))
"""


def run(families=FAMILIES, resolutions=(32, 64), batch: int = 64, seconds: float = 30.0, threads: int = 1,
        progress: bool = True) -> list[dict]:
    """One record per (family, resolution) the family supports, each measured in its own process."""
    records = []
    for arch in families:
        for res in resolutions:
            if arch == "resnet-sngan" and res != 32:
                continue  # SNGAN's ResNet is for CIFAR sizes
            p = subprocess.run([sys.executable, "-c", _WORKER, arch, str(res), str(batch), str(seconds), str(threads)],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"bench nets {arch} {res} px failed: {p.stderr.strip().splitlines()[-1]}")
            rec = {"bench": "nets", **json.loads(p.stdout.strip().splitlines()[-1])}
            records.append(rec)
            if progress:
                print(f"{arch} {res} px: {rec['images_per_s']} images/s, {rec['peak_rss_mb']} MB", file=sys.stderr,
                      flush=True)
    return records


def markdown(records: list[dict]) -> str:
    lines = ["| family | px | images/s | ms / step | G params | D params | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['family']} | {r['resolution']} | {r['images_per_s']} | {r['step_ms']} | "
                     f"{r['g_params']:,} | {r['d_params']:,} | {r['peak_rss_mb']} |")
    b = records[0] if records else {}
    return "\n".join(lines + [f"\nbatch {b.get('batch')}, {b.get('threads')} thread(s), Self-Conditioned GAN "
                              "steps on random RGB images, the families' default widths"])


@bench_command("nets")
@click.option("--families", default=",".join(FAMILIES), show_default=True)
@click.option("--resolutions", default="32,64", show_default=True)
@click.option("--batch", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=1), default=30.0, show_default=True, help="timed per family")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--json", "json_path", help="write the records here")
def command(families, resolutions, batch, seconds, threads, json_path):
    """Training images/s and peak memory of each net family at each resolution."""
    from selfcond.errors import UserError

    save = saver(json_path)  # a bad --json fails now, not after the work
    fams = names(families)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise UserError(f"bench nets: unknown family {unknown[0]!r} (known: {', '.join(FAMILIES)})")
    try:
        res = [int(r) for r in names(resolutions)]
    except ValueError:
        raise UserError(f"--resolutions expects numbers like 32,64, got {resolutions!r}") from None
    records = run(fams, res, batch, seconds, threads)
    save(records)
    click.echo(markdown(records))

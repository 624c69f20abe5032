"""The papers' experiments as commands that print and write tables: each module registers its
verb (bench/runner.py: `bench_command`), `selfcond bench` lists them."""

from __future__ import annotations

import click

from selfcond.bench.runner import BENCHES


class BenchGroup(click.Group):
    """`selfcond bench`: its verbs come from the bench registry, imported only when used."""

    def list_commands(self, ctx):
        return sorted(BENCHES.names())

    def get_command(self, ctx, name):
        return BENCHES.get(name) if name in BENCHES else None


group = BenchGroup("bench", help="The papers' experiments as commands that print and write tables.")

"""``constellate bench``: the benchmarks (the bench package)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from constellate.cli.base import (
    main,
)


@main.command()
@click.option("--quick", "mode", flag_value="quick", default=True, help="Under 10 minutes (default).")
@click.option(
    "--full", "mode", flag_value="full", help="Recluster, search and page at 1M tickets; over an hour."
)
@click.option("--smoke", "mode", flag_value="smoke", help="Tiny sizes: checks the bench runs (CI).")
@click.option(
    "--scale",
    "mode",
    flag_value="scale",
    help="The run at 100k, 300k, 1M and 3M tickets: first, unchanged and new-10 % runs (long).",
)
@click.option("--scale-max", type=int, default=None, help="With --scale: stop the series at this N.")
@click.option(
    "--scale-sizes",
    default=None,
    help="With --scale: these N instead (comma-separated, e.g. 100000,1000000).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write results here."
)
def bench(mode: str, scale_max: int | None, scale_sizes: str | None, json_path: Path | None) -> None:
    """Benchmarks with ratios to baselines measured in the same run (see the bench package)."""
    import tempfile

    if mode == "scale":
        from bench.scale import SCALE_SIZES, bench_scale

        try:
            chosen = [int(n) for n in scale_sizes.split(",")] if scale_sizes else list(SCALE_SIZES)
        except ValueError as exc:
            raise click.BadParameter(
                "a comma-separated list of ticket counts", param_hint="--scale-sizes"
            ) from exc
        sizes = [n for n in chosen if scale_max is None or n <= scale_max] or [scale_max or SCALE_SIZES[0]]
        results = {"mode": "scale", "scale": bench_scale(sizes, lambda line: click.echo(line))}
        if json_path is not None:
            json_path.write_text(json.dumps(results, indent=2))
            click.echo(f"wrote {json_path}")
        return
    from bench.run import run_bench

    with tempfile.TemporaryDirectory(prefix="constellate-bench-") as tmp:
        results = run_bench(mode, lambda line: click.echo(line), Path(tmp) / "models")
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
        click.echo(f"wrote {json_path}")

"""``paybench target ...``: the click commands of the reference target.

The lead CLI adds ``target_group`` with ``main.add_command(target_group)``; ``python -m
harness.target`` runs ``serve_command`` on its own (the subprocess entry point).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.target import DATABASE_URL_ENV, REDIS_URL_ENV
from harness.target.settings import parse_override


@click.group("target")
def target_group() -> None:
    """The reference payments API (the built-in target)."""


@target_group.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on."
)
@click.option(
    "--port", default=8000, show_default=True, type=int, help="TCP port; 0 picks a free one."
)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Model YAML file (model.yaml's shape, partial allowed).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file to keep the state in (default: a temporary one, removed at exit).",
)
@click.option(
    "--slowdown", type=float, default=None, help="Multiply every simulated time (e.g. 3.0)."
)
@click.option(
    "--error-rate",
    type=float,
    default=None,
    help="Share of business requests answered with a 500 (0..1).",
)
@click.option("--seed", type=int, default=None, help="Random seed of the model.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set any model key by its dotted path, e.g. --set capacity.checkout=4 (repeatable).",
)
@click.option(
    "--database-url",
    envvar=DATABASE_URL_ENV,
    default=None,
    metavar="URL",
    help="Keep the state in PostgreSQL (postgresql://USER@HOST:PORT/DB) instead of SQLite; "
    "also read from PAYBENCH_TARGET_DATABASE_URL.",
)
@click.option(
    "--redis-url",
    envvar=REDIS_URL_ENV,
    default=None,
    metavar="URL",
    help="Cache the plans in Redis (redis://HOST:PORT/DB) instead of in process; "
    "also read from PAYBENCH_TARGET_REDIS_URL.",
)
@click.option("--parent-pid", type=int, default=None, hidden=True)
def serve_command(
    host: str,
    port: int,
    config: Path | None,
    db: Path | None,
    slowdown: float | None,
    error_rate: float | None,
    seed: int | None,
    settings: tuple[str, ...],
    database_url: str | None,
    redis_url: str | None,
    parent_pid: int | None,
) -> None:
    """Serve the reference target in the foreground until Ctrl-C."""
    from harness.target.server import serve  # uvicorn and FastAPI load only when serving

    overrides: dict[str, Any] = dict(parse_override(text) for text in settings)
    # The named options are applied after --set, so they win for the same key.
    for key, value in (("slowdown", slowdown), ("error_rate", error_rate), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    serve(
        host,
        port,
        config,
        db,
        overrides,
        database_url=database_url or None,
        redis_url=redis_url or None,
        parent_pid=parent_pid,
    )

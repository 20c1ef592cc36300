"""The ``paybench`` command line: parse, call one command of ``harness.commands``, print
the lines it returns, exit with its code.

Every user-facing error is a ``PaybenchError`` raised by the library and caught here, in
one place, as one line on stderr and the documented exit code (see harness/errors.py).
Any other exception is a paybench bug: one line saying so and where its traceback was
saved (the run folder, when the command had one; else a temporary file), exit 3.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any, Literal, NoReturn

import click

from harness import __version__
from harness.errors import EXIT_INTERRUPTED, PaybenchError
from harness.profiles import PROJECT_ROOT, parse_duration
from harness.target.cli import target_group


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"paybench: error: {message}", err=True)
    sys.exit(code)


class PaybenchGroup(click.Group):
    """The one place where a PaybenchError becomes its line and exit code, for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PaybenchError as e:
            _fail(e.message, e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors (exit 2), --help and --version
        except Exception as e:
            from harness.runfolder import internal_error

            error = internal_error(e)
            _fail(error.message, error.exit_code)


def _default_budgets() -> Path:
    local = Path("budgets.yaml")
    return local if local.exists() else PROJECT_ROOT / "budgets.yaml"


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, f"--{param.name.replace('_', '-')}")
    except PaybenchError as e:
        raise click.BadParameter(e.message.split(": ", 1)[-1]) from None


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@click.group(cls=PaybenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paybench")
def main() -> None:
    """paybench: load-test a payments API with Locust and judge it against budgets.yaml."""
    _take_back_sigint()


def _take_back_sigint() -> None:
    """SIGINT is how paybench stops Locust and how a user stops paybench (exit 130, data kept).

    A shell without job control starts background commands (``paybench run ... &`` in a
    script) with SIGINT ignored, and the ignoring is inherited: Locust would then never
    stop on its SIGINT, and would be killed, its outputs unwritten. Ignored SIGINT is taken
    back to Python's default (KeyboardInterrupt), which Locust's process inherits as SIG_DFL.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# Options that several commands share.
_host_option = click.option(
    "--host",
    default=None,
    help="Target base URL. Without it, the built-in reference API is started on loopback.",
)
_budgets_option = click.option(
    "--budgets",
    "budgets_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Budgets file [default: ./budgets.yaml, else the project's].",
)
_out_option = click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Output root; the run folder is <out>/runs/<run-id>/.",
)

_allow_host_option = click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    help="Allow this non-loopback host name for this run (repeatable).",
)
_target_config_option = click.option(
    "--target-config",
    type=click.Path(path_type=Path),
    default=None,
    help="Behaviour model YAML for the built-in reference target.",
)


def _reply(reply: Any) -> NoReturn:
    """Print what a command returned, line by line, and exit with its code."""
    for line in reply.lines:
        click.echo(line)
    sys.exit(reply.exit_code)


@main.command()
@click.option(
    "--profile",
    default=None,
    help="Load profile: a file locustfiles/profiles/<name>.conf [default: smoke; none with "
    "another --locustfile].",
)
@_host_option
@_budgets_option
@click.option(
    "--users", type=click.IntRange(min=1), default=None, help="Override the profile's users."
)
@click.option(
    "--spawn-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Users started per second.",
)
@click.option("--run-time", callback=_duration, default=None, help="e.g. 30s, 5m, 1h30m.")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Locust worker processes (--processes N); 0 runs one process.",
)
@_out_option
@_allow_host_option
@click.option(
    "--locustfile",
    type=click.Path(path_type=Path),
    default=None,
    help="Scenario file [default: locustfiles/payments.py].",
)
@_target_config_option
@click.option(
    "--target-slowdown",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Slow the reference target down by this factor (a deliberate regression).",
)
@click.option(
    "--target-error-rate",
    type=click.FloatRange(0, 1),
    default=None,
    help="Fraction of requests the reference target fails on purpose.",
)
@click.option(
    "--target-set",
    "target_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a key of the reference target's model by its dotted path, e.g. "
    "latency_factor.checkout=1.15 (a calibrated step); repeatable.",
)
@click.option(
    "--target-database-url",
    default=None,
    metavar="URL",
    help="Run the built-in target on this PostgreSQL (postgresql://...) instead of SQLite "
    "[env PAYBENCH_TARGET_DATABASE_URL].",
)
@click.option(
    "--target-redis-url",
    default=None,
    metavar="URL",
    help="Keep the built-in target's plan cache in this Redis (redis://...) instead of in "
    "process [env PAYBENCH_TARGET_REDIS_URL].",
)
@click.option("--no-history", is_flag=True, help="Do not record the run in the history.")
@click.option(
    "--arrival-rate",
    default=None,
    metavar="RATE",
    help="Open model: start this many checkout journeys per second whatever the API does, "
    "e.g. 20/s or 600/m (docs/scenarios.md, Arrival mode).",
)
@click.option(
    "--arrival-stages",
    default=None,
    metavar="STAGES",
    help='Open model in stages held in turn, e.g. "1m:10/s,5m:40/s".',
)
@click.option(
    "--max-in-flight",
    default=None,
    metavar="N",
    help="Open model: journeys running at once per Locust process; more arrivals are "
    "dropped [default: 1000].",
)
@click.option(
    "--master",
    "master",
    is_flag=True,
    help="Be the Locust master of `paybench worker` processes on other machines "
    "(docs/distributed.md); not with --workers.",
)
@click.option(
    "--expect-workers",
    type=click.IntRange(min=1),
    default=None,
    help="With --master: start once this many workers passed the handshake [default: 1].",
)
@click.option(
    "--expect-workers-timeout",
    callback=_duration,
    default=None,
    help="With --master: give up (exit 3) when the workers have not joined by then, "
    "e.g. 2m [default: 120s].",
)
@click.option(
    "--master-bind",
    default=None,
    metavar="HOST:PORT",
    help="With --master: where it listens for workers [default: 127.0.0.1:5557; "
    "0.0.0.0:5557 for other machines].",
)
def run(
    profile: str | None,
    host: str | None,
    budgets_path: Path | None,
    users: int | None,
    spawn_rate: float | None,
    run_time: float | None,
    workers: int,
    out: Path,
    allow_hosts: tuple[str, ...],
    locustfile: Path | None,
    target_config: Path | None,
    target_slowdown: float | None,
    target_error_rate: float | None,
    target_settings: tuple[str, ...],
    target_database_url: str | None,
    target_redis_url: str | None,
    no_history: bool,
    arrival_rate: str | None,
    arrival_stages: str | None,
    max_in_flight: str | None,
    master: bool,
    expect_workers: int | None,
    expect_workers_timeout: float | None,
    master_bind: str | None,
) -> None:
    """Run a load profile, judge it against the budgets, write the reports."""
    from harness.commands.run import run as run_command
    from harness.target.settings import parse_override

    # The named options are applied after --target-set, so they win for the same key.
    overrides: dict[str, Any] = dict(parse_override(text) for text in target_settings)
    if target_slowdown is not None:
        overrides["slowdown"] = target_slowdown
    if target_error_rate is not None:
        overrides["error_rate"] = target_error_rate
    signal.signal(signal.SIGTERM, _raise_interrupt)
    _reply(
        run_command(
            profile=profile,
            host=host,
            budgets_path=budgets_path or _default_budgets(),
            users=users,
            spawn_rate=spawn_rate,
            run_time_s=run_time,
            workers=workers,
            out=out,
            allow_hosts=allow_hosts,
            locustfile=locustfile,
            target_config=target_config,
            target_overrides=overrides,
            target_database_url=target_database_url,
            target_redis_url=target_redis_url,
            history=not no_history,
            on_progress=lambda line: click.echo(line, err=True),
            arrival_rate=arrival_rate,
            arrival_stages=arrival_stages,
            max_in_flight=max_in_flight,
            master=master,
            expect_workers=expect_workers,
            expect_workers_timeout_s=expect_workers_timeout,
            master_bind=master_bind,
        )
    )


@main.command()
@click.option(
    "--master",
    "master",
    required=True,
    metavar="HOST[:PORT]",
    help="The `paybench run --master` to join [port default: 5557].",
)
@click.option(
    "--locustfile",
    type=click.Path(path_type=Path),
    default=None,
    help="Scenario file; the same as the master's [default: locustfiles/payments.py].",
)
@click.option(
    "--processes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker processes on this machine (Locust's --processes); 0 runs one.",
)
def worker(master: str, locustfile: Path | None, processes: int) -> None:
    """Run Locust as a worker of a remote `paybench run --master` (exit codes: see
    docs/distributed.md)."""
    from harness.commands.worker import worker as worker_command

    _reply(worker_command(master=master, locustfile=locustfile, processes=processes))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@_budgets_option
@click.option("--profile", default=None, help="Profile overrides to apply [default: the run's].")
def check(run_dir: Path, budgets_path: Path | None, profile: str | None) -> None:
    """Judge an existing run folder again (also one written by plain `locust --csv`)."""
    from harness.commands.check import check as check_command

    _reply(
        check_command(
            run_dir=run_dir, budgets_path=budgets_path or _default_budgets(), profile=profile
        )
    )


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@_budgets_option
def report(run_dir: Path, budgets_path: Path | None) -> None:
    """Render report.html, summary.md and junit.xml of a run folder again."""
    from harness.commands.report import report as report_command

    # Without --budgets: the copy in the run folder, what the run was judged against.
    _reply(report_command(run_dir=run_dir, budgets_path=budgets_path))


@main.command()
@_host_option
@_budgets_option
@click.option(
    "--start-users",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Users in the first step.",
)
@click.option(
    "--step-users",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Users added at each step.",
)
@click.option(
    "--step-time",
    callback=_duration,
    default="30s",
    show_default=True,
    help="How long each step holds (at least 3s).",
)
@click.option(
    "--max-users",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Stop after the step that reaches this many users.",
)
@click.option(
    "--expected-peak-rps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Expected peak requests/s [default: capacity.expected_peak_rps in budgets].",
)
@click.option(
    "--arrival-rate-steps",
    default=None,
    metavar="RATES",
    help="Open model: step the arrival rate of checkouts instead of users, e.g. "
    "10/s,20/s,30/s (each held --step-time); the answer is in checkouts/s.",
)
@_out_option
@_allow_host_option
@_target_config_option
def capacity(
    host: str | None,
    budgets_path: Path | None,
    start_users: int,
    step_users: int,
    step_time: float,
    max_users: int,
    expected_peak_rps: float | None,
    arrival_rate_steps: str | None,
    out: Path,
    allow_hosts: tuple[str, ...],
    target_config: Path | None,
) -> None:
    """Step the load up until the budgets break: capacity, knee, USL fit, headroom."""
    from harness.commands.capacity import capacity as capacity_command

    signal.signal(signal.SIGTERM, _raise_interrupt)
    if arrival_rate_steps is not None:
        from harness.commands.arrival_capacity import arrival_capacity

        _reply(
            arrival_capacity(
                host=host,
                budgets_path=budgets_path or _default_budgets(),
                rate_steps=arrival_rate_steps,
                step_time_s=step_time,
                out=out,
                target_config=target_config,
                allow_hosts=allow_hosts,
                progress=lambda line: click.echo(line, err=True),
            )
        )
    _reply(
        capacity_command(
            host=host,
            budgets_path=budgets_path or _default_budgets(),
            start_users=start_users,
            step_users=step_users,
            step_time_s=step_time,
            max_users=max_users,
            expected_peak_rps=expected_peak_rps,
            out=out,
            target_config=target_config,
            allow_hosts=allow_hosts,
            progress=lambda line: click.echo(line, err=True),
        )
    )


_history_option = click.option(
    "--history",
    type=click.Path(path_type=Path),
    default=Path("reports/history.sqlite"),
    show_default=True,
    help="The history store.",
)


@main.group()
def history() -> None:
    """The history of runs: list, import run folders, export."""


@history.command("list")
@_history_option
@click.option("--profile", default=None, help="Only runs of this profile.")
@click.option("--last", type=click.IntRange(min=1), default=None, help="Only the last N runs.")
def history_list(history: Path, profile: str | None, last: int | None) -> None:
    """List the recorded runs, oldest first."""
    from harness.commands.history import show

    _reply(show(history=history, profile=profile, last=last))


@history.command("import")
@_history_option
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
def history_import(history: Path, run_dirs: tuple[Path, ...]) -> None:
    """Record run folders (e.g. CI artefacts) in the history; a run already there is skipped."""
    from harness.commands.history import import_runs

    _reply(import_runs(history=history, run_dirs=run_dirs))


@history.command("export")
@_history_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="One row per run and request name.",
)
@click.option("--profile", default=None, help="Only runs of this profile.")
@click.option("--last", type=click.IntRange(min=1), default=None, help="Only the last N runs.")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
def history_export(
    history: Path,
    fmt: Literal["csv", "jsonl"],  # click.Choice has checked it
    profile: str | None,
    last: int | None,
    output: Path | None,
) -> None:
    """Export the per-request metrics of the recorded runs."""
    from harness.commands.history import export

    _reply(export(history=history, fmt=fmt, profile=profile, last=last, output=output))


@main.command()
@click.argument("base")
@click.argument("candidate")
@_history_option
@click.option(
    "--force",
    is_flag=True,
    help="Compare even when profile, users, scenario version or target differ.",
)
def compare(base: str, candidate: str, history: Path, force: bool) -> None:
    """Compare two runs (run ids or run folders): change, 95 % CI, significance."""
    from harness.commands.compare import compare as compare_command

    _reply(compare_command(base=base, candidate=candidate, history=history, force=force))


@main.command()
@_history_option
@click.option("--profile", default=None, help="Profile to follow [default: the latest run's].")
@click.option(
    "--last",
    type=click.IntRange(min=2),
    default=30,
    show_default=True,
    help="How many recent runs.",
)
@click.option(
    "--budgets",
    "budgets_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Budgets file for the budget lines [default: ./budgets.yaml, else the project's].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("reports/trend"),
    show_default=True,
    help="Where trend.html and trend.md go.",
)
def trend(
    history: Path, profile: str | None, last: int, budgets_path: Path | None, out: Path
) -> None:
    """Trend report: metrics across runs, change points, budget use."""
    from harness.commands.trend import trend as trend_command

    _reply(
        trend_command(
            history=history,
            profile=profile,
            last=last,
            budgets_path=budgets_path or _default_budgets(),
            out=out,
        )
    )


@main.group()
def baseline() -> None:
    """What regression budgets compare with: accept a new level, or pin a baseline run."""


@baseline.command("accept")
@click.argument("run")
@click.option("--reason", required=True, help="Why the new level is right (recorded).")
@_history_option
def baseline_accept(run: str, reason: str, history: Path) -> None:
    """Accept the level of RUN (a run id or prefix): its regression becomes the baseline."""
    from harness.commands.baseline import accept

    _reply(accept(run=run, reason=reason, history=history))


@baseline.command("pin")
@click.argument("run")
@_history_option
def baseline_pin(run: str, history: Path) -> None:
    """Pin RUN as the baseline: later runs are judged against it, without drift."""
    from harness.commands.baseline import pin

    _reply(pin(run=run, history=history))


main.add_command(target_group)

"""``python -m harness.target [serve options]``: serve the reference target (subprocess entry)."""

from __future__ import annotations

import sys

import click

from harness.errors import PaybenchError
from harness.target.cli import serve_command


def main(argv: list[str] | None = None) -> int:
    try:
        serve_command.main(args=argv, prog_name="python -m harness.target", standalone_mode=False)
    except PaybenchError as exc:
        print(f"paybench: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

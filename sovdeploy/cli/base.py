"""The command group, the consoles, and the one place errors become messages and exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from sovdeploy import __version__, views
from sovdeploy.errors import (
    EXIT_INTERRUPTED,
    InterruptedRunError,
    InvalidInventoryError,
    SovdeployError,
)
from sovdeploy.findings import Severity

P = ParamSpec("P")
R = TypeVar("R")

out = Console(highlight=False, soft_wrap=True)


err = Console(stderr=True, highlight=False, soft_wrap=True)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn sovdeploy's typed errors into messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except InvalidInventoryError as exc:
            views.render_findings(exc.findings, err)
            blocking = sum(1 for f in exc.findings if f.severity is Severity.ERROR)
            err.print(f"[red]{exc}: {blocking} problem(s); nothing was touched[/red]")
            sys.exit(exc.exit_code)
        except InterruptedRunError as exc:
            err.print(f"[yellow]interrupted:[/yellow] {exc}. Run the same command again to resume.")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]. Run the same command again to resume.")
            sys.exit(EXIT_INTERRUPTED)
        except SovdeployError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(exc.exit_code)

    return wrapper


@click.group()
@click.version_option(__version__, prog_name="sovdeploy")
def main() -> None:
    """Deploy a sovereign AI platform on hardware you own, in a jurisdiction you choose."""

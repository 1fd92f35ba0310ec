"""Live progress for long work: phase, host, task and ok/changed/failed counts.

On a terminal this is a rich live panel; elsewhere (CI logs, pipes) it prints one
line per task and per failure, so the log reads top to bottom.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

STATUSES = ("ok", "changed", "failed", "unreachable", "skipped")


@dataclass
class PhaseProgress:
    name: str
    started: float = field(default_factory=time.monotonic)
    task: str = ""
    host: str = ""
    detail: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    hosts: dict[str, Counter[str]] = field(default_factory=dict)


class Progress:
    """Receives phase, task and result events; renders them for the operator."""

    def __init__(self, console: Console, verbosity: int = 0) -> None:
        self.console = console
        self.verbosity = verbosity
        self.live_mode = console.is_terminal and not console.is_dumb_terminal
        self._live: Live | None = None
        self.current: PhaseProgress | None = None

    # -- phases --------------------------------------------------------------
    def phase_start(self, name: str, description: str) -> None:
        self.current = PhaseProgress(name)
        self.console.print(f"[bold]▶ {name}[/bold]: {description}")
        if self.live_mode:
            self._live = Live(
                self._render(), console=self.console, refresh_per_second=8, transient=True
            )
            self._live.start()

    def phase_end(self, ok: bool, summary: str = "") -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        p = self.current
        if p is None:
            return
        took = time.monotonic() - p.started
        mark = "[green]✔[/green]" if ok else "[red]✘[/red]"
        counts = " ".join(f"{k}={p.counts[k]}" for k in STATUSES if p.counts[k])
        tail = "; ".join(x for x in (summary, counts) if x)
        self.console.print(
            f"{mark} {p.name} {'done' if ok else 'failed'} in {took:.1f}s"
            + (f" ({tail})" if tail else "")
        )
        self.current = None

    # -- inside a phase ------------------------------------------------------
    def step(self, detail: str) -> None:
        """A free-form step (a Terraform line, a tool being prepared)."""
        if self.current is None:
            return
        self.current.detail = detail
        if self._live is not None:
            self._live.update(self._render())
        elif self.verbosity > 0:
            self.console.print(f"  {detail}", markup=False, highlight=False)

    def note(self, line: str, ok: bool) -> None:
        """A line that always shows, above the live panel: a check that passed or failed."""
        text = Text(f"  {line}", style="green" if ok else "red")
        if self._live is not None:
            self._live.console.print(text)
        else:
            self.console.print(text)

    def task_start(self, task: str) -> None:
        if self.current is None:
            return
        self.current.task = task
        if self._live is not None:
            self._live.update(self._render())
        else:
            self.console.print(f"  TASK {task}", markup=False, highlight=False)

    def result(self, host: str, status: str, message: str = "") -> None:
        p = self.current
        if p is None:
            return
        p.host = host
        p.counts[status] += 1
        p.hosts.setdefault(host, Counter())[status] += 1
        if status in ("failed", "unreachable"):
            line = Text(f"  {status.upper()} {host}: {p.task}: {message}", style="red")
            if self._live is not None:
                self._live.console.print(line)
            else:
                self.console.print(line)
        if self._live is not None:
            self._live.update(self._render())

    def _render(self) -> RenderableType:
        p = self.current
        if p is None:
            return Text("")
        elapsed = time.monotonic() - p.started
        head = Spinner(
            "dots",
            text=Text.from_markup(f"[bold]{p.name}[/bold] {elapsed:5.0f}s  {p.task or p.detail}"),
        )
        if not p.hosts:
            return head
        table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
        table.add_column("host")
        for status in STATUSES:
            table.add_column(status, justify="right")
        for host, counts in sorted(p.hosts.items()):
            table.add_row(host, *(str(counts[s]) for s in STATUSES))
        return Group(head, table)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

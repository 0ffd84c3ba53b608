"""What a deploy shows while it runs: an overall bar with an ETA across models, the model being measured,
each episode's return as it arrives, and one line per finished model.

Every piece of text that is not ours (model names, sha256 labels such as ``[b6a41edb]``, an agent's
messages) goes through :func:`rich.markup.escape`: rich reads ``[b6a41edb]`` as a style tag and drops it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from host.store.results_db import ModelRow, ResultsDB

SHOWN_RETURNS = 6
"""How many of the latest episode returns the live view lists (they fit in 80 columns)."""


def label(model: ModelRow) -> str:
    """A model as the user recognises it: its name and the start of its sha256 (plain text, not markup)."""
    return f"{model.name} [{model.short[:8]}]"


@dataclass
class _ModelState:
    total: int
    returns: dict[int, tuple[int, float]] = field(default_factory=dict)
    """seed -> (episode index, return): a seed is one episode however often it ran (a replayed stream, a
    round re-run because its timing was spoiled, give the same return for the same seed), and episodes
    added later continue the seed sequence."""
    done: int = 0
    """Episodes stored for its current job, as deploy() last said."""
    done_max: int = 0
    reported: bool = False
    printed: int = 0
    """How many returns its last permanent line covered: a replay adds none, so prints nothing again."""

    @property
    def completed(self) -> int:
        return max(self.done_max, len(self.returns))


class DeployProgress:
    """A live view over a deploy, fed by deploy()'s progress callback (:meth:`update`).

    :param models: the models asked for, in the order deploy() goes through them
    :param n_episodes: episodes per model, for the overall total before a model reports its own
    :param db: where deploy() stores each episode before it calls back; the return shown is read from it
    """

    def __init__(
        self, console: Console, models: list[ModelRow], n_episodes: int, db: ResultsDB, target: str
    ) -> None:
        self.console = console
        self.db = db
        self.n_episodes = n_episodes
        self.order = {m.sha256: i for i, m in enumerate(models)}
        self.states = {m.sha256: _ModelState(total=n_episodes) for m in models}
        self.skipped: set[str] = set()
        self.current: ModelRow | None = None
        self.overall = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("episodes+rounds"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            expand=True,
        )
        self.model_bar = Progress(
            TextColumn("  {task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            console=console,
            expand=True,
        )
        self.returns_line = Text("")
        self.overall_task: TaskID = self.overall.add_task(
            escape(f"connecting to {target}"), total=self._total()
        )
        self.model_task: TaskID = self.model_bar.add_task("", total=n_episodes, visible=False)
        self.live = Live(
            Group(self.overall, self.model_bar, self.returns_line),
            console=console,
            refresh_per_second=8,
            transient=True,
        )

    def __enter__(self) -> DeployProgress:
        self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish_current()
        self.live.__exit__(kind, exc, tb)

    def _total(self) -> int:
        planned = sum(s.total for sha, s in self.states.items() if sha not in self.skipped)
        return max(planned, self._completed())

    def _completed(self) -> int:
        return sum(s.completed for s in self.states.values())

    def _models_line(self) -> str:
        started = sum(1 for s in self.states.values() if s.reported)
        return f"model {started}/{len(self.states) - len(self.skipped)}"

    def _finish_current(self) -> None:
        """One permanent line for the model that was being measured (when it got episodes)."""
        if self.current is None:
            return
        state = self.states[self.current.sha256]
        if len(state.returns) > state.printed:
            returns = [r for _, r in state.returns.values()]
            state.printed = len(returns)
            spread = f" ± {statistics.stdev(returns):.1f}" if len(returns) > 1 else ""
            # its episodes are all in (later latency rounds, interleaved with other models, add none)
            mark = "[green]✓[/]" if len(returns) >= self.n_episodes else "[yellow]…[/]"
            self.console.print(
                f"{mark} {escape(label(self.current))} return {statistics.fmean(returns):.1f}{spread} "
                f"({len(returns)} episodes)",
                soft_wrap=True,
                highlight=False,
            )
        self.current = None

    def update(self, model: ModelRow, done: int, total: int) -> None:
        """deploy()'s progress callback: (model, episodes stored for its job, episodes it will run)."""
        state = self.states.setdefault(model.sha256, _ModelState(total=total))
        if not state.reported:
            # models before this one that never reported were skipped (already measured): drop them from the ETA
            index = self.order.get(model.sha256, len(self.order))
            for sha, i in self.order.items():
                if i < index and not self.states[sha].reported:
                    self.skipped.add(sha)
            state.reported = True
        state.total = total
        if self.current is None or self.current.sha256 != model.sha256:
            self._finish_current()
            self.current = model
            self.model_bar.reset(self.model_task, total=total, description=escape(label(model)), visible=True)
        if done > 0:
            latest = self.db.latest_episode(model.sha256)
            if latest is not None:
                seed, index, episode_return = latest
                state.returns[seed] = (index, episode_return)
        state.done = done
        state.done_max = max(state.done_max, done)
        self.model_bar.update(self.model_task, completed=done, total=total)
        shown = list(state.returns.items())[-SHOWN_RETURNS:]
        self.returns_line.plain = (
            "  returns: " + "  ".join(f"#{i} {r:.1f}" for _, (i, r) in shown)
            if shown
            else "  waiting for the first episode"
        )
        self.overall.update(
            self.overall_task,
            description=self._models_line(),
            completed=self._completed(),
            total=self._total(),
        )
        if done >= total:
            self._finish_current()

"""Where the host keeps things: artifacts, the results database, training runs.

One folder, ``$DRLC_HOME`` (default: the user's data directory, e.g. ~/.local/share/drlc),
overridable per command with ``--home``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def resolve(cls, home: Path | None = None) -> Workspace:
        if home is None:
            env = os.environ.get("DRLC_HOME")
            home = Path(env) if env else Path(platformdirs.user_data_dir("drlc", appauthor=False))
        home = home.expanduser().resolve()
        for sub in ("artifacts", "runs"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        return cls(home)

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def db_path(self) -> Path:
        return self.home / "results.sqlite"

    @property
    def local_agent_dir(self) -> Path:
        """Data dir of the agent that the `local` target starts on this machine."""
        return self.home / "local-agent"

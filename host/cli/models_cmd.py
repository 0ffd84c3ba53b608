"""`drlc-host models`: the variants this workspace holds."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from device_agent.envs import describe_env
from host.cli.common import HomeOption, console, open_workspace, user_errors


def models_command(home: HomeOption = None) -> None:
    """List registered policy variants (name, method, size, sha256)."""
    with user_errors(), open_workspace(home) as (_, db):
        table = Table("sha256", "name", "algo", "env", "method", "params", "file KB", "parent")
        for m in db.models():
            manifest = db.manifest(m.sha256)
            env = describe_env(m.env_id, manifest.env_kwargs, manifest.obs_wrappers) if manifest else m.env_id
            params = ", ".join(f"{k}={v}" for k, v in sorted(m.method_params.items()))
            method = m.method + (f" ({params})" if params else "")
            table.add_row(
                m.short,
                m.name,
                m.algo,
                escape(env),
                method,
                str(m.n_params),
                f"{m.file_bytes / 1024:.1f}",
                (m.parent_sha256 or "")[:12],
            )
        console.print(table)

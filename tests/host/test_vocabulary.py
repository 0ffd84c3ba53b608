"""host.vocabulary.keyed_on: a host registry holds exactly the contract's names, in the contract's order, or
its module does not import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from host.vocabulary import keyed_on
from tests.conftest import ROOT


def refused_on_import(module: str, **contract: tuple[str, ...]) -> str:
    """The ImportError message of importing ``module`` in a fresh interpreter whose contract vocabulary has the
    names in ``contract`` replaced (as if the contract had gained or lost a name the host does not know)."""
    script = textwrap.dedent(
        f"""
        from device_agent.contract import vocabulary
        for name, value in {contract!r}.items():
            setattr(vocabulary, name, value)
        try:
            import {module}
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_the_table_comes_back_in_the_contracts_order_and_read_only() -> None:
    table = keyed_on(("b", "a"), {"a": 1, "b": 2}, "t")
    assert list(table) == ["b", "a"]
    with pytest.raises(TypeError):
        table["c"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"a": 1}, "missing ['b'], not in the contract none"),
        ({"a": 1, "b": 2, "c": 3}, "missing none, not in the contract ['c']"),
    ],
)
def test_a_table_that_lacks_or_adds_a_name_is_refused(table: dict[str, int], said: str) -> None:
    with pytest.raises(ImportError, match=r"host\.x\.T must have an entry for each name") as caught:
        keyed_on(("a", "b"), table, "host.x.T")
    assert said in str(caught.value)

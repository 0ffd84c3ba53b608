"""The compression methods' vocabulary (host.compress.methods) is the one every part of drlc takes its names from."""

from __future__ import annotations

import dataclasses

from host.cli.compress_cmd import Method
from host.compress import method_options
from host.compress.methods import (
    BASELINE,
    INT8_METHODS,
    METHOD_NAMES,
    METHOD_ORDER,
    METHODS,
    PRUNING_METHODS,
    UNKNOWN_ORDER,
)
from host.compress.sweep import SweepConfig, plan
from host.report.plots import METHOD_COLOURS, METHOD_MARKERS
from host.report.stats import label_sort_key


def test_every_method_has_one_family_and_an_implementation() -> None:
    assert set(INT8_METHODS) | set(PRUNING_METHODS) == set(METHOD_NAMES)
    assert not set(INT8_METHODS) & set(PRUNING_METHODS)
    assert BASELINE not in METHOD_NAMES
    for name, entry in METHODS.items():
        config_cls, function = entry.load()
        assert dataclasses.is_dataclass(config_cls) and callable(function), name
        assert method_options(name) == {f.name: f for f in dataclasses.fields(config_cls)}


def test_the_cli_the_sweep_and_the_plots_use_the_vocabulary() -> None:
    assert tuple(m.value for m in Method) == METHOD_NAMES
    defaults = SweepConfig()
    assert defaults.int8_methods == INT8_METHODS and defaults.prune_methods == PRUNING_METHODS
    assert {item.method for item in plan(defaults)} == set(METHOD_NAMES)
    assert set(METHOD_MARKERS) == set(METHOD_COLOURS) == {BASELINE, *METHOD_NAMES}
    assert len(set(METHOD_MARKERS.values())) == len(METHOD_MARKERS)  # one marker per method


def test_reports_order_the_baseline_first_then_the_methods_as_declared_then_the_unknown() -> None:
    labels = ["some-future-method", *reversed(METHOD_NAMES), BASELINE]
    ordered = sorted(labels, key=label_sort_key)
    assert ordered == [BASELINE, *METHOD_NAMES, "some-future-method"]
    assert METHOD_ORDER[BASELINE] == 0 and UNKNOWN_ORDER > max(METHOD_ORDER.values())

"""The compression registry (host.compress.methods) keys on the contract's vocabulary, and every part of the host
takes the method names from there."""

from __future__ import annotations

import dataclasses

from device_agent.contract.vocabulary import (
    BASELINE,
    COMPRESSION_METHODS,
    INT8_METHODS,
    METHODS,
    PRUNING_METHODS,
)
from host.cli.compress_cmd import Method
from host.compress import method_options
from host.compress import methods as registry
from host.compress.sweep import SweepConfig, plan
from host.report.plots import METHOD_COLOURS, METHOD_MARKERS
from host.report.stats import label_sort_key
from tests.host.test_vocabulary import refused_on_import


def test_every_method_has_an_implementation_and_the_registry_is_the_contracts() -> None:
    assert tuple(registry.METHODS) == COMPRESSION_METHODS  # its names, in its order
    for name, entry in registry.METHODS.items():
        config_cls, function = entry.load()
        assert dataclasses.is_dataclass(config_cls) and callable(function), name
        assert method_options(name) == {f.name: f for f in dataclasses.fields(config_cls)}


def test_a_registry_that_lacks_or_adds_a_method_is_refused_on_import() -> None:
    message = refused_on_import(
        "host.compress.methods", COMPRESSION_METHODS=(*COMPRESSION_METHODS, "fp16"), PRUNING_METHODS=("l1",)
    )
    assert "host.compress.methods.METHODS" in message and "missing ['fp16']" in message


def test_the_cli_the_sweep_and_the_plots_use_the_vocabulary() -> None:
    assert tuple(m.value for m in Method) == COMPRESSION_METHODS
    defaults = SweepConfig()
    assert defaults.int8_methods == INT8_METHODS and defaults.prune_methods == PRUNING_METHODS
    assert {item.method for item in plan(defaults)} == set(COMPRESSION_METHODS)
    assert set(METHOD_MARKERS) == set(METHOD_COLOURS) == set(METHODS)
    assert len(set(METHOD_MARKERS.values())) == len(METHOD_MARKERS)  # one marker per method


def test_reports_order_the_baseline_first_then_the_methods_as_declared_then_the_unknown() -> None:
    labels = ["some-future-method", *reversed(COMPRESSION_METHODS), BASELINE]
    ordered = sorted(labels, key=label_sort_key)
    assert ordered == [BASELINE, *COMPRESSION_METHODS, "some-future-method"]
    assert registry.METHOD_ORDER[BASELINE] == 0 and registry.UNKNOWN_ORDER > max(
        registry.METHOD_ORDER.values()
    )

"""A permissive, inert unpickler for foreign pickles (old ``gym`` spaces, a whole ``VecNormalize``).

numpy arrays and dtypes are rebuilt for real; every other class becomes an inert stub that only keeps
its state, so reading a pickle never imports or runs code it names and needs no ``gym`` installed.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any


class _Stub:
    """Inert stand-in for a class the unpickler will not import: it only records its state.

    Nothing of the original class runs, so an old ``gym`` class (or anything else a pickle names)
    can neither fail to import nor execute code.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_stub_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict | type(None)):
            state, slots = state
            self.__dict__.update(slots or {})
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_stub_state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_stub_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_stub_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_stub_list", []).extend(values)


def _numpy_global(module: str, name: str) -> Any:
    """The numpy functions that rebuild arrays and dtypes; numpy 1.x's ``numpy.core`` maps to ``numpy._core``."""
    if module.startswith("numpy.core"):
        try:
            return getattr(importlib.import_module("numpy._core" + module[len("numpy.core") :]), name)
        except ImportError:  # numpy < 2
            pass
    return getattr(importlib.import_module(module), name)


_NUMPY_GLOBALS = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


class _PermissiveUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays for real and every other class as a :class:`_Stub`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return _numpy_global(module, name)
        return type(name, (_Stub,), {"__module__": f"drlc_stub.{module}"})


# What a malformed or foreign pickle can raise while being read by the permissive unpickler.
PICKLE_ERRORS = (
    OSError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
)


def permissive_loads(data: bytes) -> Any:
    return _PermissiveUnpickler(io.BytesIO(data)).load()

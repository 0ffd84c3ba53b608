"""Renamed to ``tools/bench_loop.py`` (the same benchmark, now also against a bare loop that calls the model
the way the agent does); this name keeps working.

    python tools/bench_agent.py [--model M.onnx] [--env HalfCheetah-v5]   # = python tools/bench_loop.py ...
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    target = Path(__file__).with_name("bench_loop.py")
    sys.argv[0] = str(target)
    runpy.run_path(str(target), run_name="__main__")

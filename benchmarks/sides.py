"""What every benchmark here shares: each side runs in a fresh process pinned to one CPU."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def pin_to_one_cpu() -> None:
    """Keep this process on one CPU, so that a side is measured on one core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def profiled(profile: str | None, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, under cProfile with its stats written to ``profile`` if given."""
    if not profile:
        return function(*args)
    import cProfile

    profiler = cProfile.Profile()
    result: T = profiler.runcall(function, *args)
    profiler.dump_stats(profile)
    return result


def rss_mb() -> float:
    """The process's high-water resident set so far, in MiB.

    Linux's ``VmHWM`` is read first: ``ru_maxrss`` survives ``exec`` and so
    would report the parent's footprint at the time of the fork.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_side(script: str, args: list[str], what: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh process (one BLAS thread, this checkout
    importable); the JSON document it prints last. Exits with its error when it fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, script, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"the {what} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result

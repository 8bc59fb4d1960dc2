"""Shared by the bench_*.py scripts: import cnnops.bench from this checkout.

A script run as ``python benchmarks/bench_<family>.py`` uses the suite in python/cnnops/bench of
the checkout it lives in (so an installed cnnops whose wheel predates a suite still works), and
falls back to the installed package's copy."""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def import_bench():
    """The cnnops.bench package, from this checkout when it has one."""
    import cnnops

    src = HERE.parent / "python" / "cnnops"
    if (src / "bench" / "__init__.py").is_file() and str(src) not in cnnops.__path__:
        cnnops.__path__.insert(0, str(src))
    from cnnops import bench

    return bench

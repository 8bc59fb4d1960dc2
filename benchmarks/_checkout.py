"""Shared by the bench_*.py scripts: import cnnops.bench from this checkout, record which commit a
run measured, and check the targets in targets.py against the files it wrote.

A script run as ``python benchmarks/bench_<family>.py`` uses the suite in python/cnnops/bench of
the checkout it lives in (so an installed cnnops whose wheel predates a suite still works), and
falls back to the installed package's copy. The commit goes into the results through
CNNOPS_BENCH_COMMIT (an existing value wins), because the installed suite never runs git."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMIT_ENV = "CNNOPS_BENCH_COMMIT"


def import_bench():
    """The cnnops.bench package, from this checkout when it has one."""
    import cnnops

    src = HERE.parent / "python" / "cnnops"
    if (src / "bench" / "__init__.py").is_file() and str(src) not in cnnops.__path__:
        cnnops.__path__.insert(0, str(src))
    from cnnops import bench

    return bench


def _git(*args) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def checkout_commit() -> str | None:
    """The short commit of this checkout, with "-dirty" when tracked files have changes; None
    outside a git checkout."""
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return commit


def run_families(names, out, **kwargs) -> int:
    """Run each family `names` of the suite into `out`, then print the targets of what was written. The
    exit status is the suite's (0 = every case ran and was correct); missed targets are printed,
    not turned into a failure."""
    import targets  # benchmarks/ is on sys.path when a script here runs

    bench = import_bench()
    commit = os.environ.get(COMMIT_ENV) or checkout_commit()
    rc = 0
    for family in names:
        rc = max(rc, bench.run(family, out=out, commit=commit, **kwargs))
    print("\ntargets (benchmarks/targets.py):")
    targets.report(out, names)
    return rc

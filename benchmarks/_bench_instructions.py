"""Instructions per operation, counted by valgrind: ``bench_overhead.py --clock instructions``.

A timed ratio whose numerator is a few hundred nanoseconds (an empty span's overhead, 1.5 %
of a bare span) moves with the host: on a shared VM the same code measured 0.5 % and
2.2 % in two runs. The CPU instructions executed do not move: valgrind's callgrind counts
them exactly, whatever the load, so a change of a few dozen instructions can be seen.
They are not time (a cache miss or a mispredicted branch costs many cycles and one
instruction), so this mode complements the timed run; it does not replace it.

Each case is counted in a child process of its own: ``bench_overhead.py --count-one NAME``
under ``valgrind --tool=callgrind``. The child builds every case as a timed run does and
warms each one up, so the interpreter is in the same state for every case (caches,
specialised bytecode, type version tags); then it runs the case's batch inside
``functools.reduce``, the one C function callgrind is told to count in
(``--toggle-collect``): the warm-up, imports and flushes are left out, and the pipelines'
export (``after``) too, as the timed run leaves it out. ``setarch -R`` turns address
randomisation off and the hash seed is set, so a second run gives the same counts; every
case is counted in a few layouts of the interpreter (:func:`count_cases`), each a round::

    python benchmarks/bench_overhead.py --clock instructions --only bare,noop_processor
"""

from __future__ import annotations

import functools
import gc
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _bench_stats import Case

#: The hidden option that makes bench_overhead.py count one case (run under valgrind).
COUNT_ONE = "--count-one"
#: The C function whose calls callgrind counts in: it wraps the measured batch only.
_COUNTED = "functools_reduce"
#: Warm-up: every case runs this share of its batch before the measured one.
_WARM_SHARE = 10


def valgrind() -> str | None:
    """The path of ``valgrind``, or None when it is not installed (``apt install valgrind``)."""
    return shutil.which("valgrind")


def set_ops(cases: Sequence[Case], batch: int) -> None:
    """Each case's operations per counted batch: ``batch`` divided by its scale (no repeats).

    set_ops(cases, 2000)  # a span case counts 2,000 spans, a pipeline case 80
    """
    for case in cases:
        case.ops = max(1, batch // case.scale)


def count_one(cases: Sequence[Case], name: str, batch: int) -> None:
    """In the child: warm every case up, then run ``name``'s batch where callgrind counts.

    count_one(cases, "bare", 2000)
    """
    set_ops(cases, batch)
    for case in cases:
        with case.active():
            case.batch(max(1, case.ops // _WARM_SHARE))
        if case.after is not None:
            case.after()
    (case,) = (case for case in cases if case.name == name)
    with case.active():
        gc.disable()
        # reduce() calls the batch once, with (None, ops): callgrind counts inside it only.
        functools.reduce(lambda _, ops: case.batch(ops), (case.ops,), None)
        gc.enable()
    if case.after is not None:
        case.after()


def _command(script: Path, name: str, batch: int, out: Path) -> list[str]:
    command: list[str] = []
    setarch = shutil.which("setarch")
    if setarch is not None:
        command += [setarch, platform.machine(), "-R"]  # the same addresses every run
    command += [
        valgrind() or "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--toggle-collect={_COUNTED}",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(script),
        COUNT_ONE,
        name,
        "--batch",
        str(batch),
    ]
    return command


def _total(out: Path) -> int:
    # callgrind writes the events counted as "summary: N" (older) or "totals: N".
    for line in out.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no total in {out}")


def count_cases(
    cases: Sequence[Case], script: Path, batch: int, layouts: int = 3, workers: int | None = None
) -> dict[str, list[float]]:
    """Instructions per operation of every case, in each of ``layouts`` interpreter layouts.

    Where the interpreter's objects lie decides which of its method-cache entries collide,
    and a collision costs a few hundred instructions a span: counts of one case in
    processes laid out differently differ by up to ~1,700 a span (1.5 % of a bare span),
    as much as an empty span's whole overhead. A layout is a hash seed (``PYTHONHASHSEED``
    0, 1, ...: it changes the order and size of the interpreter's tables, so where its
    objects lie); the cases of one layout start from the same state and pair as a round.
    ``batch`` is the run's batch size (a case runs ``batch // scale`` operations); the
    children run ``workers`` at a time (default: one per CPU)::

        count_cases(cases, Path("benchmarks/bench_overhead.py"), 2000)  # {"bare": [115366.0, ...], ...}
    """
    set_ops(cases, batch)
    with tempfile.TemporaryDirectory(prefix="spanstamp-bench-") as tmp:

        def one(job: tuple[Case, int]) -> float:
            case, layout = job
            out = Path(tmp) / f"{case.name}.{layout}.callgrind"
            env = {**os.environ, "PYTHONHASHSEED": str(layout)}
            done = subprocess.run(
                _command(script, case.name, batch, out), capture_output=True, text=True, env=env, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"counting {case.name} failed:\n{done.stderr[-2000:]}")
            total = _total(out)
            if total == 0:
                raise RuntimeError(f"callgrind counted nothing for {case.name}: no {_COUNTED} in this Python?")
            return total / case.ops

        jobs = [(case, layout) for layout in range(layouts) for case in cases]
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            counted = list(pool.map(one, jobs))
    found: dict[str, list[float]] = {case.name: [] for case in cases}
    for (case, _), per_op in zip(jobs, counted, strict=True):
        found[case.name].append(per_op)
    return found

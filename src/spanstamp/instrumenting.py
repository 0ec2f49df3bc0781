"""configure(auto_instrument=True): instrument what is installed, through the instrumentors' entry points.

provider = configure(service_name="chatbot", auto_instrument=True)
instrument_installed(provider)  # the same step on its own; returns the names instrumented
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from spanstamp import rules

# opentelemetry-instrument loads the first group; phoenix.otel.register(auto_instrument=True)
# the second. OpenInference packages register in both, under the same name.
OTEL_GROUP: Final = "opentelemetry_instrumentor"
OPENINFERENCE_GROUP: Final = "openinference_instrumentor"
DISABLED_ENV: Final = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
_EVERYTHING: Final = "*"


@dataclass(frozen=True)
class _Candidate:
    name: str
    entry_point: EntryPoint
    openinference: bool

    @property
    def distribution(self) -> str:
        dist = getattr(self.entry_point, "dist", None)
        return str(getattr(dist, "name", None) or self.entry_point.value)


def instrument_installed(tracer_provider: Any) -> list[str]:
    """Instrument every installed instrumentor with ``tracer_provider``; never raises.

    names = instrument_installed(provider)   # e.g. ["httpx", "openai", "threading"]

    Entry points of both groups count, each class once. One library gets one instrumentor:
    where two claim the same name (OpenInference's and OpenTelemetry's ``openai``), the
    OpenInference one is used, as its spans are what Phoenix's views read, and the other is
    skipped with a warning. ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (names, or ``*``)
    skips some, as for ``opentelemetry-instrument``. An instrumentor whose library is not
    installed (by its ``instrumentation_dependencies()``, or a ModuleNotFoundError on
    import) is skipped quietly; one whose library has an unsupported version, one that
    fails to import or to instrument, or one already instrumented is reported and skipped.
    """
    disabled = {part.strip() for part in os.environ.get(DISABLED_ENV, "").split(",") if part.strip()}
    if _EVERYTHING in disabled:
        return []
    try:
        chosen = _chosen(disabled)
    except Exception as exc:  # unreadable package metadata: the application starts all the same
        rules.logger.warning("auto_instrument: the installed instrumentors cannot be listed (%s)", type(exc).__name__)
        return []
    done: list[str] = []
    for candidate in chosen:
        try:
            if _instrument(candidate, tracer_provider):
                done.append(candidate.name)
        except ModuleNotFoundError:
            # The library it instruments is missing (opentelemetry-contrib#3421): nothing to do.
            rules.logger.debug("auto_instrument: %s is skipped, a module it imports is missing", candidate.name)
        except Exception as exc:  # an instrumentor must never take the application down
            rules.logger.warning(
                "auto_instrument: %s (%s) failed (%s); it is skipped",
                candidate.name,
                candidate.distribution,
                type(exc).__name__,
                exc_info=True,
            )
    if done:
        rules.logger.info("auto_instrument: instrumented %s", ", ".join(done))
    return done


def _candidates() -> Iterator[_Candidate]:
    openinference = {ep.value for ep in entry_points(group=OPENINFERENCE_GROUP)}
    seen: set[str] = set()
    for group in (OTEL_GROUP, OPENINFERENCE_GROUP):
        for ep in entry_points(group=group):
            if ep.value not in seen:
                seen.add(ep.value)
                yield _Candidate(ep.name, ep, ep.value in openinference)


def _chosen(disabled: set[str]) -> list[_Candidate]:
    by_name: dict[str, list[_Candidate]] = {}
    for candidate in _candidates():
        if candidate.name not in disabled:
            by_name.setdefault(candidate.name, []).append(candidate)
    chosen: list[_Candidate] = []
    for name, claimants in sorted(by_name.items()):
        # Two instrumentors of one library would give every call two spans.
        claimants.sort(key=lambda c: not c.openinference)
        winner, *others = claimants
        for other in others:
            rules.logger.warning(
                "auto_instrument: %s is instrumented by %s; %s, which instruments it too, is skipped "
                "(instrument it yourself if you want both)",
                name,
                winner.distribution,
                other.distribution,
            )
        chosen.append(winner)
    return chosen


def _instrument(candidate: _Candidate, tracer_provider: Any) -> bool:
    instrumentor = candidate.entry_point.load()()
    if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
        rules.logger.info("auto_instrument: %s is already instrumented; left as it is", candidate.name)
        return False
    if not _dependencies_ok(candidate, instrumentor):
        return False
    # The check just ran, on the same requirements instrument() would check.
    instrumentor.instrument(tracer_provider=tracer_provider, skip_dep_check=True)
    return bool(getattr(instrumentor, "is_instrumented_by_opentelemetry", True))


def _dependencies_ok(candidate: _Candidate, instrumentor: Any) -> bool:
    # The instrumentor's own declared requirements, through opentelemetry-instrumentation's
    # check (it comes with every instrumentor: it holds BaseInstrumentor). Not the
    # distribution-level check opentelemetry-instrument runs: before 0.5x that one takes
    # pkg_resources distributions only.
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
    if conflict is None:
        return True
    if getattr(conflict, "found", None) is None:
        # The library it instruments is not installed: nothing to do, as for opentelemetry-instrument.
        return False
    rules.logger.warning(
        "auto_instrument: %s (%s) is skipped: it needs %s, found %s",
        candidate.name,
        candidate.distribution,
        getattr(conflict, "required", "?"),
        conflict.found,
    )
    return False

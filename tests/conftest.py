"""Shared pytest fixtures. Keep each group self-contained."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# --- OTLP receivers (tests/otlp_receiver.py) ---------------------------------------------
# Real OTLP trace receivers on 127.0.0.1, a free port each, stopped at teardown.
from otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver


@pytest.fixture
def http_receiver() -> Iterator[OtlpHttpReceiver]:
    """An OTLP/HTTP receiver; export to ``http_receiver.traces_url`` (or ``.url`` as the base)."""
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def grpc_receiver() -> Iterator[OtlpGrpcReceiver]:
    """An OTLP/gRPC receiver; export to ``grpc_receiver.endpoint`` (``http://127.0.0.1:<port>``)."""
    with OtlpGrpcReceiver() as receiver:
        yield receiver


# --- end of OTLP receivers ---------------------------------------------------------------


# --- Input rules state ---------------------------------------------------------------------
# The rules are process-wide: every test starts in default mode with a fresh rate limiter,
# so a warning one test triggered cannot be suppressed in the next.


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    from spanstamp import configure_rules
    from spanstamp.rules import DEFAULT_MAX_ID_LENGTH, forget_warnings

    forget_warnings()
    yield
    configure_rules(strict=False, max_id_length=DEFAULT_MAX_ID_LENGTH)
    forget_warnings()
    # User-id hashing is process-wide too (a processor option turns it on for all): each
    # test starts from what the environment says, after monkeypatch restored it.
    from spanstamp import privacy

    privacy.load_environment()


# --- No outside OTEL_* / SPANSTAMP_* settings ---------------------------------------------
# For modules whose pipelines read the environment (configure(), the exporters): only the
# variables a test sets may steer them, and the rules start and end lenient with a fresh
# warning rate limiter. Modules take it with ``pytestmark = pytest.mark.usefixtures(...)``.


@pytest.fixture
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from spanstamp import rules

    for name in list(os.environ):
        if name.startswith(("OTEL_", "SPANSTAMP_")):
            monkeypatch.delenv(name)
    rules.configure_rules(strict=False)
    rules.forget_warnings()
    yield
    rules.configure_rules(strict=False)
    rules.forget_warnings()


# --- The global tracer provider (task(), feedback(), session events) ----------------------
# They use the global provider, which the API sets once per process: each test that needs
# it gets a fresh one (support.Tracing, in-memory export) and the API's globals are reset
# after, so other tests still see no provider set.


@pytest.fixture
def global_tracing() -> Iterator[Any]:
    from opentelemetry import trace

    from spanstamp import phoenix_annotations
    from support import Tracing, reset_trace_globals

    tracing = Tracing()
    reset_trace_globals()
    trace.set_tracer_provider(tracing.provider)
    phoenix_annotations.configure_phoenix(enabled=False)  # a PHOENIX_COLLECTOR_ENDPOINT of the shell is ignored
    yield tracing
    reset_trace_globals()
    phoenix_annotations.reset_phoenix()


# --- end of the global tracer provider ---------------------------------------------------

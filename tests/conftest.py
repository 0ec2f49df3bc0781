"""Shared pytest fixtures. Keep each group self-contained."""

from __future__ import annotations

from collections.abc import Iterator

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

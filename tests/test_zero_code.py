"""Zero-code: an app with no tracing code, run under ``opentelemetry-instrument``.

tests/apps/zero_code_app.py calls the real OpenAI client against the offline stub inside
``using_session`` / ``using_user``. opentelemetry-instrument (with opentelemetry-distro)
sets up the OTLP pipeline to the ``http_receiver`` fixture and loads the installed
instrumentors by entry point; spanstamp's ``opentelemetry_post_instrument`` entry point
adds the processor only when ``SPANSTAMP_AUTO_INSTALL`` is true.

Two instrumentors matter here. OpenInference's reads the session and user from the
Context by itself (spanstamp writes its keys), so its span carries the ids either way.
OpenTelemetry's httpx instrumentor (the OpenAI client sends through httpx) does not:
its span carries them only when spanstamp's processor is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otlp_receiver import OtlpHttpReceiver, ReceivedSpan

APP = Path(__file__).parent / "apps" / "zero_code_app.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
IDS = {"session.id": "conv-zero", "user.id": "user-zero"}
OPENINFERENCE_SCOPE = "openinference.instrumentation.openai"
HTTPX_SCOPE = "opentelemetry.instrumentation.httpx"


def _run_app(receiver: OtlpHttpReceiver, **variables: str) -> tuple[dict[str, object], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANSTAMP_"))}
    env.update(
        OTEL_SERVICE_NAME="zero-code-app",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.traces_url,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
    )
    env.update(variables)
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(APP)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _traces(receiver: OtlpHttpReceiver) -> tuple[list[ReceivedSpan], list[ReceivedSpan]]:
    """The spans of the call made inside the scopes, and of the one made outside."""
    spans = receiver.spans
    by_input = {
        span.attributes.get("llm.input_messages.0.message.content"): span.trace_id
        for span in spans
        if span.scope_name == OPENINFERENCE_SCOPE
    }
    assert set(by_input) == {"inside", "outside"}, [(s.scope_name, s.name) for s in spans]
    inside = [span for span in spans if span.trace_id == by_input["inside"]]
    outside = [span for span in spans if span.trace_id == by_input["outside"]]
    assert len(inside) + len(outside) == len(spans)
    # Both instrumentors really ran: the test would prove nothing without the httpx span.
    for trace_spans in (inside, outside):
        assert {OPENINFERENCE_SCOPE, HTTPX_SCOPE} <= {span.scope_name for span in trace_spans}
    return inside, outside


def _ids(span: ReceivedSpan) -> dict[str, object]:
    return {key: span.attributes[key] for key in IDS if key in span.attributes}


def test_with_the_opt_in_every_span_of_the_call_carries_the_ids(http_receiver: OtlpHttpReceiver) -> None:
    printed, stderr = _run_app(http_receiver, SPANSTAMP_AUTO_INSTALL="true")
    assert printed == {"provider": "TracerProvider", "flushed": True}
    inside, outside = _traces(http_receiver)
    for span in inside:
        assert _ids(span) == IDS, (span.scope_name, span.name)
    for span in outside:
        assert _ids(span) == {}, (span.scope_name, span.name)
    assert inside[0].resource["service.name"] == "zero-code-app"
    assert "spanstamp" not in stderr


@pytest.mark.parametrize("opt_in", [None, "false", "0"], ids=["unset", "false", "zero"])
def test_without_the_opt_in_installing_spanstamp_changes_nothing(
    http_receiver: OtlpHttpReceiver, opt_in: str | None
) -> None:
    variables = {} if opt_in is None else {"SPANSTAMP_AUTO_INSTALL": opt_in}
    printed, stderr = _run_app(http_receiver, **variables)
    assert printed == {"provider": "TracerProvider", "flushed": True}
    inside, outside = _traces(http_receiver)
    for span in inside:
        # Only OpenInference stamps, by reading the Context itself; the rest is untouched.
        assert _ids(span) == (IDS if span.scope_name == OPENINFERENCE_SCOPE else {}), (span.scope_name, span.name)
    assert all(_ids(span) == {} for span in outside)
    assert "spanstamp" not in stderr
    assert "SPANSTAMP" not in stderr


def test_an_unreadable_opt_in_value_is_reported_and_nothing_is_installed(http_receiver: OtlpHttpReceiver) -> None:
    _, stderr = _run_app(http_receiver, SPANSTAMP_AUTO_INSTALL="maybe")
    assert "SPANSTAMP_AUTO_INSTALL is not a boolean" in stderr
    inside, _ = _traces(http_receiver)
    assert [_ids(span) for span in inside if span.scope_name == HTTPX_SCOPE] == [{}]


def test_without_an_sdk_provider_the_opt_in_logs_and_the_app_runs_on(http_receiver: OtlpHttpReceiver) -> None:
    # No configurator runs (the name matches none), so the global provider stays the
    # API's proxy. Strict mode is on: spanstamp must still not raise at startup.
    printed, stderr = _run_app(
        http_receiver,
        SPANSTAMP_AUTO_INSTALL="1",
        SPANSTAMP_STRICT="1",
        OTEL_PYTHON_CONFIGURATOR="no-such-configurator",
    )
    assert printed == {"provider": "ProxyTracerProvider", "flushed": None}
    assert (
        "SPANSTAMP_AUTO_INSTALL is set, but no SDK TracerProvider is global after auto-instrumentation "
        "(got ProxyTracerProvider); spans are not stamped." in stderr
    )
    assert "Traceback" not in stderr
    assert http_receiver.spans == []

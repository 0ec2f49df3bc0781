"""configure(auto_instrument=True) instruments what is installed, through the entry points.

The real OpenInference OpenAI instrumentor, loaded from its own entry point, traces the real
``openai`` client against the examples' stub, and the spans arrive stamped at the loopback
OTLP receiver with no instrumentor line in the test. Failing, conflicting and absent
instrumentors are real installed distributions (``*.dist-info`` on ``sys.path``) in a child
process, so their entry points never reach this one. Everything instrumented here is
uninstrumented after the test: instrumentors patch global classes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

import spanstamp
from otlp_receiver import OtlpHttpReceiver
from spanstamp import rules, using_session, using_user
from spanstamp.instrumenting import OPENINFERENCE_GROUP, OTEL_GROUP, instrument_installed

STUB_MODEL = "stub"
OPENAI_V2 = "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor"


def _load_stub() -> Any:
    # Not through tests/llm_stack.py, which imports the contrib instrumentors: this file also
    # runs at the runtime dependencies' lower bounds, where only OpenInference's is installed.
    path = Path(__file__).resolve().parent.parent / "examples" / "stub_llm.py"
    spec = importlib.util.spec_from_file_location("_auto_instrument_stub", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.serve_stub


def _installed(name: str) -> bool:
    """Whether an instrumentor named ``name`` is installed (the contrib ones need SDK 1.45)."""
    return any(ep.name == name for ep in entry_points(group=OTEL_GROUP))


def _uninstrument_everything() -> None:
    for group in (OTEL_GROUP, OPENINFERENCE_GROUP):
        for ep in entry_points(group=group):
            instrumentor = ep.load()()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "SPANSTAMP_")):
            monkeypatch.delenv(name)
    rules.forget_warnings()
    yield
    _uninstrument_everything()


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    with _load_stub()() as base_url:
        yield base_url


def test_configure_alone_gives_stamped_chat_completion_spans(
    stub_url: str, http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spanstamp")
    provider = spanstamp.configure(
        service_name="auto", endpoint=http_receiver.traces_url, batch=False, auto_instrument=True, set_global=False
    )
    try:
        client = OpenAI(base_url=stub_url, api_key="x", max_retries=0)
        with using_session("s-auto"), using_user("u-auto"):
            client.chat.completions.create(model=STUB_MODEL, messages=[{"role": "user", "content": "hi"}])
    finally:
        provider.shutdown()
    spans = http_receiver.spans
    (chat,) = [s for s in spans if s.name == "ChatCompletion"]
    assert chat.scope_name == "openinference.instrumentation.openai"
    assert (chat.attributes["session.id"], chat.attributes["user.id"]) == ("s-auto", "u-auto")
    assert chat.resource["service.name"] == "auto"
    if _installed("httpx2"):  # the httpx2 instrumentation came in too, and its span is stamped
        (post,) = [s for s in spans if s.name == "POST"]
        assert post.attributes["session.id"] == "s-auto"
    if OPENAI_V2 in {ep.value for ep in entry_points(group=OTEL_GROUP)}:
        # openai-v2 also claims "openai": one instrumentor per library, so no second LLM span.
        assert not [s for s in spans if s.name == f"chat {STUB_MODEL}"]
        assert any("openai-v2, which instruments it too, is skipped" in r.getMessage() for r in caplog.records)
    assert any(r.getMessage().startswith("auto_instrument: instrumented ") for r in caplog.records)


def test_off_by_default(stub_url: str, http_receiver: OtlpHttpReceiver) -> None:
    provider = spanstamp.configure(endpoint=http_receiver.traces_url, batch=False, set_global=False)
    try:
        client = OpenAI(base_url=stub_url, api_key="x", max_retries=0)
        client.chat.completions.create(model=STUB_MODEL, messages=[{"role": "user", "content": "hi"}])
    finally:
        provider.shutdown()
    assert http_receiver.spans == []


def test_disabled_instrumentations_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "openai, threading")
    provider = spanstamp.configure(exporter=[], set_global=False)
    try:
        names = instrument_installed(provider)
    finally:
        provider.shutdown()
    assert "openai" not in names
    assert "threading" not in names
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    assert instrument_installed(provider) == []


def test_instrumenting_twice_leaves_the_first_in_place(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spanstamp")
    first = spanstamp.configure(exporter=[], set_global=False)
    second = spanstamp.configure(exporter=[], set_global=False)
    try:
        assert "openai" in instrument_installed(first)
        assert instrument_installed(second) == []
        assert "auto_instrument: openai is already instrumented; left as it is" in caplog.text
    finally:
        first.shutdown()
        second.shutdown()


_BROKEN_MODULE = """
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

class _Failing:
    def _instrument(self, **kwargs):
        raise RuntimeError("this instrumentor always fails")

    def _uninstrument(self, **kwargs):
        pass

# Each its own BaseInstrumentor subclass, as real ones are: BaseInstrumentor is a singleton
# per class, and a subclass of another instrumentor would share its instance.
class Broken(_Failing, BaseInstrumentor):
    def instrumentation_dependencies(self):
        return []

class Conflicting(_Failing, BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ["openai < 1"]  # installed, in a version this one does not support

class Absent(_Failing, BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ["no-such-library >= 1"]  # not installed at all: nothing to instrument
"""


def _distribution(root: Path, name: str, entry_point: str) -> None:
    info = root / f"spanstamp_fake_{name}-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: spanstamp-fake-{name}", "Version: 1.0"]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{OTEL_GROUP}]\n{name} = {entry_point}\n", encoding="utf-8")


def test_failing_and_conflicting_instrumentors_are_reported_and_absent_ones_skipped(tmp_path: Path) -> None:
    (tmp_path / "spanstamp_fake_broken.py").write_text(_BROKEN_MODULE, encoding="utf-8")
    _distribution(tmp_path, "broken", "spanstamp_fake_broken:Broken")
    # An instrumentor module that imports a library which is not installed: skipped quietly,
    # as opentelemetry-instrument does (a ModuleNotFoundError means "nothing to instrument").
    _distribution(tmp_path, "unimportable", "spanstamp_fake_no_such_module:Instrumentor")
    _distribution(tmp_path, "conflict", "spanstamp_fake_broken:Conflicting")
    _distribution(tmp_path, "absent", "spanstamp_fake_broken:Absent")
    code = """
        import json, logging
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logger = logging.getLogger("spanstamp")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        import spanstamp
        spanstamp.configure(exporter=[], auto_instrument=True, set_global=False)
        print(json.dumps([[r.levelname, r.getMessage()] for r in records]))
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANSTAMP_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    messages = {message: level for level, message in json.loads(result.stdout)}
    warned = [m for m, level in messages.items() if level == "WARNING"]
    assert any(m.startswith("auto_instrument: broken (spanstamp-fake-broken) failed (RuntimeError)") for m in warned)
    assert any("conflict (spanstamp-fake-conflict) is skipped: it needs openai < 1, found openai " in m for m in warned)
    assert not any("absent" in m or "unimportable" in m for m in messages)
    (done,) = [m for m in messages if m.startswith("auto_instrument: instrumented ")]
    assert "openai" in done.split("instrumented ", 1)[1].split(", ")
    assert "broken" not in done

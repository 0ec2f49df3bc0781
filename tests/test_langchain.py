"""LangChain and LangGraph runs: the session and user in a run's config reach every span.

The real ``langchain-core``, ``langchain-openai`` (``ChatOpenAI`` against the examples'
stub on loopback) and ``langgraph`` (a graph with an ``InMemorySaver`` checkpointer) run
under the real OpenInference LangChain instrumentor, OpenTelemetry's openai-v2
instrumentor and the httpx instrumentation. Spans go through the pipeline
``spanstamp.configure()`` builds to the OTLP ``http_receiver`` and are checked there.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections import ChainMap
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from openinference.instrumentation.langchain import LangChainInstrumentor
from opentelemetry.sdk.trace import TracerProvider

import spanstamp
from llm_stack import HTTPX, OPENAI_V2, STUB_MODEL, Instrumentation, instrumented, serve_stub
from otlp_receiver import OtlpHttpReceiver, ReceivedSpan
from spanstamp.integrations.langchain import TRACER_SCOPE, run_ids

SESSION, USER = "session.id", "user.id"

LANGCHAIN = Instrumentation("langchain", LangChainInstrumentor, "RunnableSequence", TRACER_SCOPE)
OPENAI_SCOPE, HTTPX_SCOPE = OPENAI_V2.scope_name, HTTPX.scope_name
# The spans of one run of ``prompt | model``: LangChain's three, the OpenAI call's, httpx's.
CHAIN_SPANS = sorted(
    [
        (TRACER_SCOPE, "RunnableSequence"),
        (TRACER_SCOPE, "ChatPromptTemplate"),
        (TRACER_SCOPE, "ChatOpenAI"),
        (OPENAI_SCOPE, OPENAI_V2.span_name),
        (HTTPX_SCOPE, "POST"),
    ]
)
# One turn of the graph: the graph's span, its node's, the model's, the OpenAI call's, httpx's.
GRAPH_SPANS = sorted(
    [
        (TRACER_SCOPE, "LangGraph"),
        (TRACER_SCOPE, "chat"),
        (TRACER_SCOPE, "ChatOpenAI"),
        (OPENAI_SCOPE, OPENAI_V2.span_name),
        (HTTPX_SCOPE, "POST"),
    ]
)


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    with serve_stub() as base_url:
        yield base_url


@pytest.fixture
def provider(http_receiver: OtlpHttpReceiver) -> Iterator[TracerProvider]:
    # Exporting synchronously: a span is at the receiver once it ended.
    provider = spanstamp.configure(
        service_name="langchain", endpoint=http_receiver.traces_url, batch=False, set_global=False
    )
    try:
        with instrumented([LANGCHAIN, OPENAI_V2, HTTPX], provider):
            yield provider
    finally:
        provider.shutdown()


@pytest.fixture
def model(provider: TracerProvider, stub_url: str) -> ChatOpenAI:
    return ChatOpenAI(base_url=stub_url, api_key="offline", model=STUB_MODEL, max_retries=0)


@pytest.fixture
def chain(model: ChatOpenAI) -> Runnable[dict[str, str], AIMessage]:
    return ChatPromptTemplate.from_messages([("user", "{question}")]) | model


def metadata(session: str, user: str, key: str = "session_id") -> dict[str, Any]:
    return {"metadata": {key: session, "user_id": user}}


def by_ids(spans: list[ReceivedSpan]) -> dict[tuple[str | None, str | None], list[tuple[str, str]]]:
    """The (scope, name) of the spans, grouped by the (session.id, user.id) they carry."""
    groups: dict[tuple[str | None, str | None], list[tuple[str, str]]] = {}
    for span in spans:
        key = (span.attributes.get(SESSION), span.attributes.get(USER))
        groups.setdefault(key, []).append((span.scope_name, span.name))
    return {key: sorted(names) for key, names in groups.items()}


def runs_of(*ids: tuple[str, str], spans: list[tuple[str, str]] = CHAIN_SPANS) -> dict[Any, Any]:
    return {pair: spans for pair in ids}


# --- invoke, ainvoke under gather, batch, stream ----------------------------------------------


@pytest.mark.parametrize("key", ["session_id", "thread_id", "conversation_id"])
def test_invoke_every_span_of_the_run_carries_the_metadata_ids(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver, key: str
) -> None:
    reply = chain.invoke({"question": "hello"}, config=metadata("s-1", "u-1", key))
    assert reply.content == "You said: hello"
    assert by_ids(http_receiver.spans) == runs_of(("s-1", "u-1"))


def test_ainvoke_under_gather_keeps_each_runs_ids(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver
) -> None:
    async def main() -> list[AIMessage]:
        return list(
            await asyncio.gather(
                *(chain.ainvoke({"question": f"q{n}"}, config=metadata(f"s-{n}", f"u-{n}")) for n in range(3))
            )
        )

    replies = asyncio.run(main())
    assert [reply.content for reply in replies] == [f"You said: q{n}" for n in range(3)]
    assert by_ids(http_receiver.spans) == runs_of(*((f"s-{n}", f"u-{n}") for n in range(3)))


def test_batch_each_input_gets_its_configs_ids(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver
) -> None:
    replies = chain.batch(
        [{"question": "b1"}, {"question": "b2"}],
        config=[metadata("s-b1", "u-b1"), metadata("s-b2", "u-b2", "thread_id")],
    )
    assert [reply.content for reply in replies] == ["You said: b1", "You said: b2"]
    assert by_ids(http_receiver.spans) == runs_of(("s-b1", "u-b1"), ("s-b2", "u-b2"))


def test_two_streams_read_in_turn_chunk_by_chunk(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver
) -> None:
    streams = [
        chain.stream({"question": "one two three"}, config=metadata("s-x", "u-x")),
        chain.stream({"question": "four five six"}, config=metadata("s-y", "u-y")),
    ]
    read: list[list[str]] = [[], []]
    # The consumer takes a chunk from each in turn, outside both runs.
    for pair in itertools.zip_longest(*streams):
        for text, chunk in zip(read, pair, strict=True):
            if chunk is not None:
                text.append(str(chunk.content))
    assert ["".join(text) for text in read] == ["You said: one two three", "You said: four five six"]
    assert all(len(text) > 3 for text in read)  # really chunk by chunk
    assert by_ids(http_receiver.spans) == runs_of(("s-x", "u-x"), ("s-y", "u-y"))


# A model called on its own is the run: LangChain sets no run config for its body.
MODEL_SPANS = sorted([(TRACER_SCOPE, "ChatOpenAI"), (OPENAI_SCOPE, OPENAI_V2.span_name), (HTTPX_SCOPE, "POST")])


def test_a_model_called_on_its_own_passes_its_runs_ids(model: ChatOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    async def in_tasks() -> None:
        await asyncio.gather(
            model.ainvoke("a1", config=metadata("s-a1", "u-a1")),
            model.ainvoke("a2", config=metadata("s-a2", "u-a2")),
        )
        chunks = [str(chunk.content) async for chunk in model.astream("as", config=metadata("s-as", "u-as"))]
        assert "".join(chunks) == "You said: as"

    assert model.invoke("i", config=metadata("s-i", "u-i")).content == "You said: i"
    assert "".join(str(chunk.content) for chunk in model.stream("s", config=metadata("s-s", "u-s"))) == "You said: s"
    asyncio.run(in_tasks())
    model.batch(["b1", "b2"], config=[metadata("s-b1", "u-b1"), metadata("s-b2", "u-b2")])
    pairs = [("s-i", "u-i"), ("s-s", "u-s"), ("s-a1", "u-a1"), ("s-a2", "u-a2"), ("s-as", "u-as")]
    pairs += [("s-b1", "u-b1"), ("s-b2", "u-b2")]
    assert by_ids(http_receiver.spans) == runs_of(*pairs, spans=MODEL_SPANS)


def test_the_models_own_metadata_counts_too(
    stub_url: str, provider: TracerProvider, http_receiver: OtlpHttpReceiver
) -> None:
    tagged = ChatOpenAI(
        base_url=stub_url, api_key="offline", model=STUB_MODEL, max_retries=0, metadata={"user_id": "u-model"}
    )
    tagged.invoke("q", config={"metadata": {"session_id": "s-call"}})
    assert by_ids(http_receiver.spans) == runs_of(("s-call", "u-model"), spans=MODEL_SPANS)


def test_one_key_order_for_every_span_when_metadata_names_two_sessions(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver
) -> None:
    # OpenInference's tracer prefers conversation_id to thread_id; spanstamp's order decides
    # for every span of the run, OpenInference's included.
    chain.invoke({"question": "q"}, config={"metadata": {"conversation_id": "c-1", "thread_id": "t-1"}})
    assert by_ids(http_receiver.spans) == runs_of(("t-1", None))


def test_spans_outside_any_run_get_nothing_from_langchain(
    chain: Runnable[dict[str, str], AIMessage], provider: TracerProvider, http_receiver: OtlpHttpReceiver
) -> None:
    chain.invoke({"question": "inside"}, config=metadata("s-in", "u-in"))
    with provider.get_tracer("app").start_as_current_span("after"):
        pass
    chain.invoke({"question": "no ids"})
    groups = by_ids(http_receiver.spans)
    assert groups == {("s-in", "u-in"): CHAIN_SPANS, (None, None): sorted([("app", "after"), *CHAIN_SPANS])}


# --- LangGraph: a checkpointer and a thread_id ------------------------------------------------


def _graph(model: ChatOpenAI) -> Any:
    """One node that asks the model; the checkpointer keeps each thread's messages."""

    def chat(state: MessagesState) -> dict[str, list[Any]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=InMemorySaver())


def _async_graph(model: ChatOpenAI) -> Any:
    """The same with an async node that passes its config on, as LangChain asks on Python 3.10
    (where asyncio cannot run a task in a given context, so the run config is not inherited)."""

    async def chat(state: MessagesState, config: RunnableConfig) -> dict[str, list[Any]]:
        return {"messages": [await model.ainvoke(state["messages"], config)]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=InMemorySaver())


def test_langgraph_thread_id_is_the_session_of_every_turn(model: ChatOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    graph = _graph(model)
    for thread, user in (("t-1", "u-1"), ("t-2", "u-2"), ("t-1", "u-1")):
        config = {"configurable": {"thread_id": thread, "user_id": user}}
        graph.invoke({"messages": [HumanMessage(f"hi from {thread}")]}, config=config)
    # The checkpointer kept each thread: t-1's second turn sees its first.
    state = graph.get_state({"configurable": {"thread_id": "t-1"}})
    assert [message.content for message in state.values["messages"]] == [
        "hi from t-1",
        "You said: hi from t-1",
        "hi from t-1",
        "You said: hi from t-1",
    ]
    assert by_ids(http_receiver.spans) == {
        ("t-1", "u-1"): sorted(GRAPH_SPANS * 2),
        ("t-2", "u-2"): GRAPH_SPANS,
    }


def test_langgraph_threads_run_at_once_with_gather(model: ChatOpenAI, http_receiver: OtlpHttpReceiver) -> None:
    graph = _async_graph(model)

    async def main() -> None:
        await asyncio.gather(
            *(
                graph.ainvoke({"messages": [HumanMessage(f"hi {n}")]}, config={"configurable": {"thread_id": f"t-{n}"}})
                for n in range(3)
            )
        )

    asyncio.run(main())
    assert by_ids(http_receiver.spans) == {(f"t-{n}", None): GRAPH_SPANS for n in range(3)}


# --- Precedence: a scope wins, and the run is not split ----------------------------------------


def test_an_explicit_scope_wins_and_every_span_of_the_run_agrees(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver
) -> None:
    # OpenInference's tracer writes the metadata's session at span end; the scope's stays.
    with spanstamp.using_session("scope-s"), spanstamp.using_user("scope-u"):
        chain.invoke({"question": "q"}, config=metadata("meta-s", "meta-u"))
    assert by_ids(http_receiver.spans) == runs_of(("scope-s", "scope-u"))
    chain_span = http_receiver.by_name("RunnableSequence")
    assert json.loads(chain_span.attributes["metadata"])["session_id"] == "meta-s"  # what it tried to write


def test_a_scope_sets_only_the_session_the_run_names_the_user(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver
) -> None:
    with spanstamp.using_session("scope-s"):
        chain.invoke({"question": "q"}, config=metadata("meta-s", "meta-u"))
    assert by_ids(http_receiver.spans) == runs_of(("scope-s", "meta-u"))


def test_a_metadata_scope_naming_a_session_wins_over_the_run(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver
) -> None:
    with spanstamp.using_metadata({"session_id": "scope-meta-s"}):
        chain.invoke({"question": "q"}, config=metadata("meta-s", "meta-u"))
    assert by_ids(http_receiver.spans) == runs_of(("scope-meta-s", "meta-u"))


def test_ids_survive_the_attribute_count_limit_on_long_conversations(
    http_receiver: OtlpHttpReceiver, stub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenInference flattens each message into attributes: 40 messages pass a limit of 32.
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "32")
    provider = spanstamp.configure(endpoint=http_receiver.traces_url, batch=False, set_global=False)
    try:
        with instrumented([LANGCHAIN, OPENAI_V2, HTTPX], provider):
            model = ChatOpenAI(base_url=stub_url, api_key="offline", model=STUB_MODEL, max_retries=0)
            history = [HumanMessage(f"m{n}") if n % 2 else AIMessage(f"r{n}") for n in range(40)]
            model.invoke(history, config=metadata("s-long", "u-long"))
    finally:
        provider.shutdown()
    spans = http_receiver.spans
    assert by_ids(spans) == runs_of(("s-long", "u-long"), spans=MODEL_SPANS)
    model_span = http_receiver.by_name("ChatOpenAI")
    assert len(model_span.attributes) == 32
    assert model_span.dropped_attributes_count > 0  # the limit really cut, and the count stays true


def test_hashed_user_ids_hash_the_runs_user(http_receiver: OtlpHttpReceiver, stub_url: str) -> None:
    key = "k" * 32
    provider = spanstamp.configure(endpoint=http_receiver.traces_url, batch=False, set_global=False, hash_user_ids=key)
    try:
        with instrumented([LANGCHAIN, OPENAI_V2, HTTPX], provider):
            model = ChatOpenAI(base_url=stub_url, api_key="offline", model=STUB_MODEL, max_retries=0)
            (ChatPromptTemplate.from_messages([("user", "{question}")]) | model).invoke(
                {"question": "q"}, config=metadata("s-h", "u-h")
            )
    finally:
        provider.shutdown()
    # The run's user is stamped as its pseudonym, on every span of the run.
    assert by_ids(http_receiver.spans) == runs_of(("s-h", spanstamp.pseudonymize("u-h", key=key)))
    # Nowhere raw: OpenInference's LangChain tracer also writes the run's metadata (with its
    # user_id) on its spans; in configure()'s pipeline that is hashed before export too.
    sent = b"".join(request.body for request in http_receiver.requests)
    assert sent
    assert b'"u-h"' not in sent
    metadata_attrs = [span.attributes["metadata"] for span in http_receiver.spans if "metadata" in span.attributes]
    assert metadata_attrs
    assert all(json.loads(text).get("user_id") == spanstamp.pseudonymize("u-h", key=key) for text in metadata_attrs)


# --- What is read, and what is not ----------------------------------------------------------


def test_run_ids_follows_the_id_rules_and_never_raises() -> None:
    class Broken(dict[str, Any]):
        def get(self, key: str, default: object = None) -> object:
            raise RuntimeError("broken mapping")

    assert run_ids({"metadata": {"session_id": " s-1 ", "thread_id": "t-1", "user_id": 42}}) == {
        SESSION: "s-1",
        USER: "42",
    }
    # Blank, bool, over the cap, not a str or int: left out; configurable fills what metadata lacks.
    assert run_ids({"metadata": {"session_id": "  ", "thread_id": True, "user_id": "u" * 10_000}}) == {}
    assert run_ids({"metadata": {"user_id": ["u"]}, "configurable": {"thread_id": "t-9", "user_id": 5}}) == {
        SESSION: "t-9",
        USER: "5",
    }
    assert run_ids({"metadata": ChainMap({"thread_id": "t-c"})}) == {SESSION: "t-c"}
    assert run_ids({"metadata": Broken(session_id="s")}) == {}
    assert run_ids(None) == {}
    assert run_ids({"metadata": "not a mapping"}) == {}


def test_ids_the_rules_refuse_are_left_out_quietly_and_the_run_goes_on(
    chain: Runnable[dict[str, str], AIMessage], http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    odd = {"metadata": {"session_id": "s" * 100_000, "thread_id": True, "user_id": ["u-1"]}}
    with caplog.at_level("DEBUG", logger="spanstamp"):
        assert chain.invoke({"question": "q"}, config=odd).content == "You said: q"
    # spanstamp stamps none of them; OpenInference's tracer writes the session as it is, on its spans.
    assert by_ids(http_receiver.spans) == {
        (None, None): sorted([(OPENAI_SCOPE, OPENAI_V2.span_name), (HTTPX_SCOPE, "POST")]),
        ("s" * 100_000, None): [
            (TRACER_SCOPE, "ChatOpenAI"),
            (TRACER_SCOPE, "ChatPromptTemplate"),
            (TRACER_SCOPE, "RunnableSequence"),
        ],
    }
    assert not caplog.records  # a framework's config is read quietly, and nothing failed


def test_an_app_without_langchain_does_not_import_it(http_receiver: OtlpHttpReceiver) -> None:
    # A fresh interpreter: this test process has imported LangChain already.
    script = textwrap.dedent(
        f"""
        import sys
        import spanstamp
        provider = spanstamp.configure(endpoint={http_receiver.traces_url!r}, batch=False, set_global=False)
        tracer = provider.get_tracer("app")
        with spanstamp.using_session("s-plain"), spanstamp.using_user("u-plain"):
            with tracer.start_as_current_span("in scope"):
                tracer.start_span("child").end()
        tracer.start_span("outside").end()
        provider.shutdown()
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("langchain_core", "langgraph")))
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "SPANSTAMP_"))}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert by_ids(http_receiver.spans) == {
        ("s-plain", "u-plain"): [("app", "child"), ("app", "in scope")],
        (None, None): [("app", "outside")],
    }


def test_the_readers_see_the_runs_ids_as_the_processor_does() -> None:
    from langchain_core.runnables import RunnableLambda

    def body(_: object) -> tuple[str | None, str | None, dict[str, Any]]:
        return (
            spanstamp.current_session_id(),
            spanstamp.current_user_id(),
            dict(spanstamp.get_attributes_from_context()),
        )

    config: RunnableConfig = {"configurable": {"thread_id": "thread-7", "user_id": "u-7"}}
    session_id, user_id, attrs = RunnableLambda(body).invoke(None, config=config)
    assert (session_id, user_id) == ("thread-7", "u-7")
    assert attrs == {"session.id": "thread-7", "user.id": "u-7"}
    with spanstamp.using_session("explicit"):  # an explicit scope wins, as on spans
        assert RunnableLambda(body).invoke(None, config=config)[0] == "explicit"
    assert spanstamp.current_session_id() is None  # outside the run, nothing

"""Correct ids under asyncio and threads: no cross-talk, and a way to carry scopes into pools."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from spanstamp import carry_context, current_session_id, using_attributes, using_session, using_user
from support import Tracing
from threads import run_in_threads


def _ids_by_span(tracing: Tracing, prefix: str) -> dict[str, tuple[object, object]]:
    return {
        s.name: ((s.attributes or {}).get("session.id"), (s.attributes or {}).get("user.id"))
        for s in tracing.spans()
        if s.name.startswith(prefix)
    }


def test_200_concurrent_tasks_each_with_its_own_session_and_user() -> None:
    tracing = Tracing()

    async def conversation(n: int) -> None:
        async with using_session(f"s-{n}"), using_user(f"u-{n}"):
            for turn in range(3):
                # Yield to the loop between spans so that tasks interleave.
                await asyncio.sleep(random.random() / 1000)
                with tracing.tracer.start_as_current_span(f"task-{n}-{turn}"):
                    await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(conversation(n) for n in range(200)))

    asyncio.run(main())
    seen = _ids_by_span(tracing, "task-")
    assert len(seen) == 600
    for name, ids in seen.items():
        n = name.split("-")[1]
        assert ids == (f"s-{n}", f"u-{n}"), name


def test_32_threads_each_with_its_own_session_and_user() -> None:
    tracing = Tracing()
    barrier = threading.Barrier(32)

    def worker(n: int) -> None:
        with using_attributes(session_id=f"s-{n}", user_id=f"u-{n}"):
            barrier.wait()  # every thread is inside its scope at once
            for turn in range(20):
                tracing.record(f"thread-{n}-{turn}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = _ids_by_span(tracing, "thread-")
    assert len(seen) == 32 * 20
    for name, ids in seen.items():
        n = name.split("-")[1]
        assert ids == (f"s-{n}", f"u-{n}"), name


def test_one_scope_object_shared_by_threads_and_tasks_at_once() -> None:
    tracing = Tracing()
    shared = using_session("shared")
    barrier = threading.Barrier(16)

    def worker(n: int) -> None:
        for i in range(50):
            with shared:
                if i == 0:
                    barrier.wait()
                with shared:  # re-entered, nested with itself
                    tracing.record(f"shared-{n}-{i}")
                assert current_session_id() == "shared"
            assert current_session_id() is None

    errors = run_in_threads(worker, range(16))

    async def task(n: int) -> None:
        async with shared:
            await asyncio.sleep(0)
            async with shared:
                tracing.record(f"shared-task-{n}")
        assert current_session_id() is None

    async def tasks() -> None:
        await asyncio.gather(*(task(n) for n in range(50)))

    asyncio.run(tasks())
    assert errors == []
    seen = _ids_by_span(tracing, "shared-")
    assert len(seen) == 16 * 50 + 50
    assert {ids[0] for ids in seen.values()} == {"shared"}


def test_decorated_handler_shared_by_threads_with_ids_from_each_call() -> None:
    tracing = Tracing()

    @using_attributes(session_id=_from("conversation_id"), user_id=_from("user_id"))
    def handler(conversation_id: str, user_id: str) -> None:
        tracing.record(f"call-{conversation_id}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: handler(f"c{n}", f"u{n}"), range(200)))
    seen = _ids_by_span(tracing, "call-")
    assert len(seen) == 200
    for name, ids in seen.items():
        n = name.removeprefix("call-c")
        assert ids == (f"c{n}", f"u{n}")


def _from(name: str) -> object:
    from spanstamp import from_arg

    return from_arg(name)


def test_tasks_gather_and_to_thread_inherit_the_scope_by_themselves() -> None:
    tracing = Tracing()

    async def main() -> None:
        async with using_session("async"):
            await asyncio.gather(asyncio.sleep(0), asyncio.create_task(_record_async(tracing, "task")))
            await asyncio.to_thread(tracing.record, "to_thread")

    asyncio.run(main())
    assert tracing.attrs("task")["session.id"] == "async"
    assert tracing.attrs("to_thread")["session.id"] == "async"


async def _record_async(tracing: Tracing, name: str) -> None:
    tracing.record(name)


def test_pools_and_threads_do_not_inherit_without_carry_context() -> None:
    tracing = Tracing()
    with using_session("request"), ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(tracing.record, "bare-pool").result()
        thread = threading.Thread(target=tracing.record, args=("bare-thread",))
        thread.start()
        thread.join()
    assert "session.id" not in tracing.attrs("bare-pool")
    assert "session.id" not in tracing.attrs("bare-thread")


def test_carry_context_brings_the_scopes_into_pools_and_threads() -> None:
    tracing = Tracing()
    with using_session("request"), using_user("u"), ThreadPoolExecutor(max_workers=4) as pool:
        pool.submit(carry_context(tracing.record), "pool").result()
        record = carry_context(tracing.record)
        # One carried function run by many workers at once.
        list(pool.map(record, [f"map-{n}" for n in range(50)]))
        thread = threading.Thread(target=carry_context(tracing.record), args=("thread",))
        thread.start()
        thread.join()
    assert tracing.attrs("pool") == {"session.id": "request", "user.id": "u"}
    assert tracing.attrs("thread") == {"session.id": "request", "user.id": "u"}
    assert all(tracing.attrs(f"map-{n}")["session.id"] == "request" for n in range(50))


def test_carry_context_captures_at_wrap_time_and_keeps_parent_span() -> None:
    tracing = Tracing()
    with tracing.tracer.start_as_current_span("parent") as parent, using_session("first"):
        carried = carry_context(tracing.record)
    with using_session("second"):
        thread = threading.Thread(target=carried, args=("child",))
        thread.start()
        thread.join()
    child = tracing.span("child")
    assert (child.attributes or {})["session.id"] == "first"
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id

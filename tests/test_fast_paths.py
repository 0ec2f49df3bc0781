"""The scopes' fast paths give exactly what the general code gives (issue 14).

Each fast path copies a slower one for the common case; these tests pin the two to the
same result, over many inputs where the input space is large.
"""

from __future__ import annotations

from typing import Any

from spanstamp.calls import ScopedFunction, scoped_function

# --- Decorated calls: the direct __call__ against wrapt's own ---------------------------


def _recording() -> tuple[list[tuple[Any, ...]], Any]:
    seen: list[tuple[Any, ...]] = []

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append((wrapped, instance, args, kwargs))
        return wrapped(*args, **kwargs)

    return seen, wrapper


def test_a_direct_call_hands_the_wrapper_what_wrapt_hands_it() -> None:
    def answer(self: object, b: int = 2, *, c: int = 3) -> tuple[object, int, int]:
        return self, b, c

    seen, wrapper = _recording()
    fast, slow = scoped_function(answer, wrapper), ScopedFunction(answer, wrapper)
    assert type(fast) is not ScopedFunction and isinstance(fast, ScopedFunction)  # the direct path is taken
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [((1,), {}), ((1, 5), {"c": 4}), ((), {"self": 0})]
    for args, kwargs in calls:
        assert fast(*args, **kwargs) == slow(*args, **kwargs)
    assert seen[0::2] == seen[1::2]
    assert seen[2] == (answer, None, (1, 5), {"c": 4})


def test_methods_and_bound_methods_keep_wrapts_binding() -> None:
    seen, wrapper = _recording()

    class Bot:
        def reply(self, text: str) -> str:
            return text

        fast = scoped_function(reply, wrapper)
        slow = ScopedFunction(reply, wrapper)

    bot = Bot()
    assert bot.fast("a") == bot.slow("a") == "a"
    assert Bot.fast(bot, "b") == Bot.slow(bot, "b") == "b"
    assert seen[0::2] == seen[1::2]
    assert seen[0][1] is bot and seen[2][1] is bot
    # Already bound: wrapt finds its __self__ itself, so no direct path is made.
    bound = scoped_function(bot.reply, wrapper)
    assert type(bound) is ScopedFunction
    assert bound("c") == "c" and seen[-1][1] is bot

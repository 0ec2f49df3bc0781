"""Hostile values for the input gate's tests (a helper module, not a test file).

Values that pass an ``isinstance`` test and then misbehave, values no encoder takes,
and values too big or too deep to convert. Each hostile text carries :data:`MARK`, so a
test can tell whether any of it reached a log record. ``unittest.mock`` objects are
here on purpose: a mock *is* the hostile input (``Mock(spec=str)`` passes
``isinstance(value, str)`` and then answers every method with another mock)::

    value = make("str", "strip")       # a str subclass whose strip() raises
    value = make("mock", "str")        # Mock(spec=str)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any
from unittest import mock

#: In every hostile text: found in a log record, it means a value leaked into the logs.
MARK = "ZQX7marker"


class Boom(Exception):  # noqa: N818 - what a hostile object raises, not an error of ours
    """What a hostile object raises; its message carries nothing of the value."""


def _boom(*args: object, **kwargs: object) -> Any:
    raise Boom("boom")


STR_METHODS = (
    "__str__",
    "__repr__",
    "strip",
    "__len__",
    "__hash__",
    "__eq__",
    "__iter__",
    "__getitem__",
    "encode",
    "split",
    "isprintable",
    "isascii",
    "lower",
    "__format__",
    "__contains__",
    "__add__",
    "__bool__",
)
INT_METHODS = (
    "__str__",
    "__repr__",
    "__index__",
    "__int__",
    "__hash__",
    "__eq__",
    "bit_length",
    "__format__",
    "__bool__",
    "__lt__",
    "__float__",
)
LIST_METHODS = ("__iter__", "__len__", "__getitem__", "__contains__", "__bool__", "__reversed__", "__eq__")
DICT_METHODS = (
    "items",
    "keys",
    "values",
    "__iter__",
    "__len__",
    "__getitem__",
    "get",
    "__contains__",
    "__bool__",
    "copy",
)

_classes: dict[tuple[type, str], type] = {}


def _subclass(base: type, method: str) -> type:
    key = (base, method)
    if key not in _classes:
        name = f"Hostile{base.__name__.title()}_{method.strip('_')}"
        namespace: dict[str, Any] = {method: _boom}
        if method == "__eq__":
            namespace["__hash__"] = base.__hash__  # defining __eq__ alone would unset it
        _classes[key] = type(name, (base,), namespace)
    return _classes[key]


def hostile_str(method: str, text: str = f"{MARK}-s") -> str:
    """A str subclass instance whose ``method`` raises."""
    value: str = _subclass(str, method)(text)
    return value


def hostile_int(method: str, number: int = 4242) -> int:
    """An int subclass instance whose ``method`` raises."""
    value: int = _subclass(int, method)(number)
    return value


def hostile_list(method: str, items: list[Any] | None = None) -> list[Any]:
    """A list subclass instance whose ``method`` raises."""
    value: list[Any] = _subclass(list, method)(items if items is not None else [f"{MARK}-tag"])
    return value


def hostile_dict(method: str, items: dict[Any, Any] | None = None) -> dict[Any, Any]:
    """A dict subclass instance whose ``method`` raises."""
    value: dict[Any, Any] = _subclass(dict, method)(items if items is not None else {f"{MARK}-k": f"{MARK}-v"})
    return value


class LateHashStr(str):
    """A str whose __hash__ raises once armed: it can be made a dict key first."""

    armed = False

    def __hash__(self) -> int:
        if self.armed:
            raise Boom("boom")
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


def dict_with_hostile_keys() -> dict[Any, Any]:
    key = LateHashStr(f"{MARK}-k")
    value: dict[Any, Any] = {key: 1, 3: 4, (1, 2): 5, None: 6}
    key.armed = True
    return value


class BadPairsMapping(Mapping[Any, Any]):
    """A Mapping whose items() yields what ``pairs`` gives: non-pairs, triples, raisers."""

    def __init__(self, pairs: Callable[[], Iterator[Any]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: object) -> Any:
        return f"{MARK}-v"

    def __iter__(self) -> Iterator[Any]:
        return iter([f"{MARK}-k"])

    def __len__(self) -> int:
        return 1

    def items(self) -> Any:
        return self._pairs()


def _raising_iterator() -> Iterator[Any]:
    yield (f"{MARK}-a", 1)
    raise Boom("boom")


BAD_PAIRS: dict[str, Callable[[], Iterator[Any]]] = {
    "non-pairs": lambda: iter([1, None, f"{MARK}-ab"]),
    "triples": lambda: iter([(f"{MARK}-k", 1, 2)]),
    "raises-midway": _raising_iterator,
    "hostile-key-hash": lambda: iter([(hostile_str("__hash__", f"{MARK}-key"), 1)]),
    "hostile-key-strip": lambda: iter([(hostile_str("strip", f"{MARK}-key"), 1)]),
    "items-not-iterable": lambda: 42,  # type: ignore[dict-item,return-value]
}


def deep_list(depth: int = 5000) -> list[Any]:
    value: list[Any] = [f"{MARK}-deep"]
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int = 5000) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": f"{MARK}-deep"}
    for _ in range(depth):
        value = {"d": value}
    return value


def circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"name": f"{MARK}-c"}
    value["self"] = value
    return value


def circular_list() -> list[Any]:
    value: list[Any] = [f"{MARK}-c"]
    value.append(value)
    return value


class StrRaises:
    """Not a str at all, and str() of it raises (json's default=str calls it)."""

    def __str__(self) -> str:
        raise Boom("boom")

    __repr__ = __str__


def lone_surrogate(text: str = f"{MARK}-abc") -> str:
    """What a JSON request body can carry: a str that UTF-8 cannot encode."""
    decoded: str = json.loads(json.dumps(text)[:-1] + '\\ud800"')
    return decoded


def mock_of(kind: str) -> Any:
    specs: dict[str, Any] = {"str": str, "int": int, "dict": dict, "list": list, "mapping": Mapping}
    if kind == "magic":
        return mock.MagicMock()
    if kind == "noncallable-str":
        return mock.NonCallableMock(spec=str)
    return mock.Mock(spec=specs[kind])


SCALARS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "true": lambda: True,
    "zero": lambda: 0,
    "negative": lambda: -7,
    "huge-int": lambda: 10**5000,  # over int's max str digits
    "big-int": lambda: 2**200,
    "nan": lambda: math.nan,
    "inf": lambda: -math.inf,
    "float": lambda: 1.5,
    "decimal-nan": lambda: Decimal("NaN"),
    "bytes": lambda: f"{MARK}-b".encode(),
    "bytearray": lambda: bytearray(f"{MARK}-b".encode()),
    "complex": lambda: 1j,
    "object": object,
    "type": lambda: str,
    "function": lambda: _boom,
    "str-raises": StrRaises,
    "empty": lambda: "",
    "blank": lambda: " \t\n ",
    "plain": lambda: f"{MARK}-plain",
    "long": lambda: f"{MARK}-" + "x" * 10_000,
    "control": lambda: f"{MARK}\x00\r\n-ctl",
    "bidi": lambda: f"{MARK}\u202e-rtl\u200b",
    "surrogate": lone_surrogate,
    "surrogate-only": lambda: lone_surrogate(""),
    "non-ascii": lambda: f"{MARK}-séance-ü",
    "semicolon": lambda: f"{MARK};k=v",
}

CONTAINERS: dict[str, Callable[[], Any]] = {
    "deep-list": deep_list,
    "deep-dict": deep_dict,
    "circular-dict": circular_dict,
    "circular-list": circular_list,
    "set": lambda: {f"{MARK}-t1", f"{MARK}-t2"},
    "frozenset-mixed": lambda: frozenset({f"{MARK}-t", 3}),
    "tuple": lambda: (f"{MARK}-t", lone_surrogate()),
    "generator": lambda: (t for t in [f"{MARK}-g"]),
    "list-of-hostile": lambda: [hostile_str("strip"), mock_of("str"), lone_surrogate(), 5],
    "dict-hostile-values": lambda: {
        "user_id": hostile_str("strip", f"{MARK}-uid"),
        "session_id": mock_of("int"),
        "n": math.nan,
        f"{MARK}-k": StrRaises(),
        "s": lone_surrogate(),
        "deep": deep_list(3000),
    },
    "dict-hostile-keys": dict_with_hostile_keys,
    "dict-surrogate-key": lambda: {lone_surrogate(f"{MARK}-key"): "v", "user_id": lone_surrogate()},
    "dict-named-ids": lambda: {"user_id": f"{MARK}-user", "session_id": f"{MARK}-sess", "thread_id": 10**5000},
}


def make(kind: str, detail: str) -> Any:
    """A fresh hostile value: ``kind`` is "scalar", "container", "str", "int", "list", "dict",
    "bad-pairs" or "mock"; ``detail`` picks which one (see the tables above)."""
    if kind == "scalar":
        return SCALARS[detail]()
    if kind == "container":
        return CONTAINERS[detail]()
    if kind == "str":
        return hostile_str(detail)
    if kind == "int":
        return hostile_int(detail)
    if kind == "list":
        return hostile_list(detail)
    if kind == "dict":
        return hostile_dict(detail)
    if kind == "bad-pairs":
        return BadPairsMapping(BAD_PAIRS[detail])
    if kind == "mock":
        return mock_of(detail)
    raise KeyError(kind)


#: Every (kind, detail) :func:`make` knows, for strategies and parametrized tests.
ALL_KINDS: list[tuple[str, str]] = [
    *(("scalar", name) for name in SCALARS),
    *(("container", name) for name in CONTAINERS),
    *(("str", name) for name in STR_METHODS),
    *(("int", name) for name in INT_METHODS),
    *(("list", name) for name in LIST_METHODS),
    *(("dict", name) for name in DICT_METHODS),
    *(("bad-pairs", name) for name in BAD_PAIRS),
    *(("mock", name) for name in ("str", "int", "dict", "list", "mapping", "magic", "noncallable-str")),
]


def settings_snapshot() -> list[tuple[object, dict[str, object]]]:
    """The process-wide settings objects of spanstamp (propagation, privacy, rules), copied.

    snapshot = settings_snapshot(); ...; restore_settings(snapshot)
    """
    from spanstamp import privacy, propagation, rules

    found = []
    for module in (propagation, privacy, rules):
        settings = getattr(module, "_settings", None)
        if settings is not None:
            names = getattr(type(settings), "__slots__", ())
            found.append((settings, {name: getattr(settings, name) for name in names if hasattr(settings, name)}))
    return found


def restore_settings(snapshot: list[tuple[object, dict[str, object]]]) -> None:
    for settings, values in snapshot:
        for name, value in values.items():
            setattr(settings, name, value)

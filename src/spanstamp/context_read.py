"""The processor's quick read of a Context: :func:`~spanstamp.context.collect`'s result, faster.

For a span started without a parent context (the usual case), the values to stamp are
what ``collect(keys, None, current)`` returns. Most Contexts hold what the scopes wrote:
exact ASCII ``str`` values, checked already. :func:`read_plain` takes those as they are,
testing only that they are still clean (the first branch of
:func:`~spanstamp.context.stampable`, inlined: a call per value cost ~80 ns), and hands
anything else to ``stampable()``. tests/test_processor.py pins both to one result::

    found, plain, named = read_plain(current, watch, keys, rules.settings.max_id_length)
    late = named_ids(keys, current)  # when named: ids a scope's metadata names
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from spanstamp import attributes as attr
from spanstamp.context import collect, stampable

_IDS: Final = attr.ID_ATTRIBUTES
_TEMPLATE: Final = attr.PROMPT_TEMPLATE


def read_plain(
    current: Context, watch: Collection[str], keys: Collection[str], max_id_length: int
) -> tuple[dict[str, AttributeValue], bool, bool]:
    """The values of ``keys`` in ``current``, as ``collect()`` takes them and in its order.

    Also returns whether every value was a plain, clean ``str`` (nothing in them can
    change: the caller may keep them for the next span started in this Context), and
    whether ``current`` holds an id a scope's metadata names (``watch`` minus ``keys``;
    see :func:`named_ids`)::

        read_plain(get_current(), watch, keys, 128)  # -> ({"session.id": "s-1"}, True, False)
    """
    named = False
    plain = True
    found: dict[str, AttributeValue] = {}
    for key in current:  # keys only: most are not ours, and need no value
        if key in watch:
            if key not in keys:  # an id a scope's metadata names
                named = True
                continue
            value = current[key]
            if not (
                type(value) is str
                and value
                and value.isascii()
                and (key not in _IDS or (len(value) <= max_id_length and value.strip() is value))
                and (key != _TEMPLATE or not value.isspace())
            ):
                plain = False
                value = stampable(key, value)
                if value is None:
                    continue
            found[key] = value
    return found, plain, named


def named_ids(keys: Collection[str], current: Context) -> dict[str, AttributeValue]:
    """The ids a scope's metadata names that ``collect()`` stamps: where no scope set the key.

    They come after everything :func:`read_plain` returned, as in ``collect()``'s order::

        named_ids(keys, get_current())  # -> {"session.id": "from-metadata"}
    """
    return {
        key: value
        for key, value in collect(keys, None, current).items()
        if key in attr.FROM_METADATA.values() and stampable(key, current.get(key)) is None
    }

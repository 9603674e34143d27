"""The pending predictions of one partition's join, by id, each with its deadline.

``PendingStore`` is the little the join asks of wherever its pending
predictions live; ``CompactStore`` keeps them in memory at a fraction of the
size of the decoded records (a few hundred bytes with ten features instead of
about eight hundred):

- each prediction is packed into one ``bytes`` value (msgpack) keyed by its id;
  model, version and tags are numbered once per store, and features that are
  raw JSON are cut into a template (keys and punctuation, numbered once) and the
  text of their values, from which the exact bytes are put back together;
- deadlines are indexed by buckets of ``width`` seconds holding ids (the same
  string objects as the keys), a bucket sorted by (deadline, id) only once it
  is due; an id that left early stays in its bucket until then and is skipped;
- the ``recent`` latest added stay as they came (no packing for those matched
  soon after they arrive; ``get`` and ``pop`` give back the same object).

What comes out equals what went in, field for field (raw JSON stays raw).

>>> from predwatch.records import Prediction
>>> store = CompactStore(recent=0)
>>> a = Prediction("a", "fraud", "v1", 10.0, "1", 0.9, None, b'{"x": 1.5, "c": "FR"}', {})
>>> b = a._replace(id="b", timestamp=5.0)
>>> store.add(a, 70.0); store.add(b, 65.0)
>>> store.get("a") == a, len(store), "b" in store
(True, 2, True)
>>> [p.id for p in store.pop_due(70.0)], len(store)
(['b'], 1)
>>> store.pop("a") == a, store.pop("a")
(True, None)
"""

from __future__ import annotations

import heapq
import re
import struct
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from predwatch.records import Prediction

__all__ = ["CompactStore", "PendingStore", "StoreFactory"]


class PendingStore(Protocol):
    """Pending predictions of one partition's join, by id, each with its deadline."""

    def __len__(self) -> int: ...
    def __contains__(self, key: str) -> bool: ...
    def get(self, key: str) -> Prediction | None: ...
    def add(self, prediction: Prediction, deadline: float) -> None: ...  # key not present
    def pop(self, key: str) -> Prediction | None: ...  # remove one (matched)
    # remove+return all with deadline < mark, ordered by (deadline, id)
    def pop_due(self, mark: float) -> list[Prediction]: ...
    # remove+return the `count` smallest by (deadline, id)
    def pop_oldest(self, count: int) -> list[Prediction]: ...


StoreFactory = Callable[[], PendingStore]
"""Makes an empty store, one per partition's join."""

_encode = msgspec.msgpack.Encoder().encode
_new_tuple = tuple.__new__
_decode = msgspec.msgpack.Decoder().decode
# A packed row is a msgpack array of 8 (one byte, 0x98) whose first item is the deadline
# as a float64 (0xcb and 8 bytes, big-endian): read without unpacking the rest.
_DEADLINE = struct.Struct(">d").unpack_from
# What ``features`` was, and how it is kept (templated: + 2 * template + 1 if it was Raw).
_DICT, _BYTES, _RAW, _JSON, _TEMPLATED = 0, 1, 2, 3, 4
_FAR = 2**62  # the bucket of a deadline too large for an int
_CONTEXTS = 64  # (model, version, tags) numbered per store; the others are kept inline
_TEMPLATES = 16  # templates per store (each a regex that a miss tries); others kept whole
# A value in a template's hole: a JSON number or literal, or a string without escapes.
# Possessive, so a mismatch fails at once; NUL never occurs in a hole (it separates them).
_HOLE = rb'([^",}\]\x00]*+|"[^"\\\x00]*+")'
_TOKENS = re.compile(rb'\s+|"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s"{}\[\],:]+')


class CompactStore:
    """Pending predictions packed into bytes, with a bucketed deadline index (see the module).

    ``recent``: how many of the latest added are kept unpacked (between that and
    twice that: they are packed in bulk); ``width``: the seconds of deadline one
    bucket spans.
    """

    def __init__(self, recent: int = 512, width: float = 1.0) -> None:
        self._recent_size = recent
        self._width = width
        self._recent: dict[str, tuple[float, Prediction]] = {}  # oldest first
        self._packed: dict[str, bytes] = {}
        self._buckets: dict[int, list[str]] = {}
        self._order: list[int] = []  # heap of the bucket numbers in ``_buckets``
        self._sorted: int | None = None  # the bucket whose ids are sorted, largest first
        self._contexts: list[tuple[str, str, dict[str, str]]] = []
        self._context_index: dict[tuple[Any, ...], int] = {}  # (model, version, *tags)
        self._templates: list[tuple[bytes, ...]] = []  # pieces between a template's holes
        self._coders: list[tuple[Callable[[Any], Any], bytes]] = []  # rebuilt on load
        self._last = 0  # the template that fitted last

    def __len__(self) -> int:
        return len(self._recent) + len(self._packed)

    def __contains__(self, key: str) -> bool:
        return key in self._recent or key in self._packed

    def get(self, key: str) -> Prediction | None:
        recent = self._recent.get(key)
        if recent is not None:
            return recent[1]
        value = self._packed.get(key)
        return None if value is None else self._unpack(key, value)

    def add(self, prediction: Prediction, deadline: float) -> None:
        key = prediction.id
        deadline = float(deadline)
        if deadline != deadline:  # NaN: it would sort nowhere and hold back all that follow
            raise ValueError(f"the deadline of prediction {key!r} is not a number")
        if self._recent_size:
            recent = self._recent
            recent[key] = (deadline, prediction)
            if len(recent) > 2 * self._recent_size:
                self._pack_oldest()
        else:
            self._packed[key] = self._pack(prediction, deadline)
        try:
            number = int(deadline // self._width)
        except (OverflowError, ValueError):
            number = self._bucket(deadline)
        ids = self._buckets.get(number)
        if ids is None:
            self._buckets[number] = [key]
            heapq.heappush(self._order, number)
        else:
            ids.append(key)
            if number == self._sorted:
                self._sorted = None

    def pop(self, key: str) -> Prediction | None:
        recent = self._recent.pop(key, None)
        if recent is not None:
            return recent[1]
        value = self._packed.pop(key, None)
        return None if value is None else self._unpack(key, value)

    def pop_due(self, mark: float) -> list[Prediction]:
        return self._drain(mark, len(self))

    def pop_oldest(self, count: int) -> list[Prediction]:
        return self._drain(None, count)

    def __getstate__(self) -> dict[str, Any]:
        """As checkpoint data: the buckets without the ids that left early (and in order, so
        the list of bucket numbers is a heap); compiled templates are made again on use."""
        state = dict(self.__dict__)
        buckets: dict[int, list[str]] = {}
        for key, value in self._packed.items():
            buckets.setdefault(self._bucket(_DEADLINE(value, 2)[0]), []).append(key)
        for key, (deadline, _) in self._recent.items():
            buckets.setdefault(self._bucket(deadline), []).append(key)
        state.update(_buckets=buckets, _order=sorted(buckets), _sorted=None, _coders=[])
        return state

    # --- the deadline index ------------------------------------------------------------

    def _bucket(self, deadline: float) -> int:
        try:
            return int(deadline // self._width)
        except (OverflowError, ValueError):  # infinite (or not a number)
            return _FAR if deadline > 0 else -_FAR

    def _deadline_in(self, key: str, number: int) -> float | None:
        """``key``'s deadline if it is pending with a deadline in bucket ``number``."""
        recent = self._recent.get(key)
        if recent is not None:
            deadline = recent[0]
        else:
            value = self._packed.get(key)
            if value is None:
                return None
            deadline = _DEADLINE(value, 2)[0]
        return deadline if self._bucket(deadline) == number else None

    def _drain(self, mark: float | None, count: int) -> list[Prediction]:
        """Remove and return up to ``count`` of the smallest (deadline, id), all below ``mark``
        (if given: an infinite deadline is below none).

        Buckets follow deadline order (``floor(deadline / width)`` never decreases as the
        deadline grows), so the first one left with an id at or past ``mark`` ends it.
        """
        out: list[Prediction] = []
        buckets, order = self._buckets, self._order
        while order and len(out) < count:
            number = order[0]
            ids = buckets[number]
            if self._sorted != number:
                ids = buckets[number] = self._sort(number, ids)
                self._sorted = number
            while ids and len(out) < count:
                deadline = self._deadline_in(ids[-1], number)
                if deadline is not None and mark is not None and not deadline < mark:
                    return out
                key = ids.pop()
                if deadline is not None:  # else it left since the sort
                    prediction = self.pop(key)
                    assert prediction is not None
                    out.append(prediction)
            if not ids:
                del buckets[number]
                heapq.heappop(order)
                self._sorted = None
        return out

    def _sort(self, number: int, ids: list[str]) -> list[str]:
        """The ids of a bucket still pending there, once each, largest (deadline, id) first."""
        recent, packed, bucket = self._recent, self._packed, self._bucket
        live: dict[str, float] = {}
        for key in ids:  # as _deadline_in, without a call for each id (most left early)
            entry = recent.get(key)
            if entry is not None:
                deadline = entry[0]
            else:
                value = packed.get(key)
                if value is None:
                    continue
                deadline = _DEADLINE(value, 2)[0]
            if bucket(deadline) == number:
                live[key] = deadline
        return sorted(live, key=lambda key: (live[key], key), reverse=True)

    # --- packing -----------------------------------------------------------------------

    def _pack_oldest(self) -> None:
        """Pack all but the ``recent`` latest, at once (a dict emptied from its front one item
        at a time is slow to iterate; a new one is not).

        The usual prediction (a known context, raw features of the template that fitted
        last) is packed here as ``_pack`` would, without a call per prediction.
        """
        items = list(self._recent.items())
        cut = len(items) - self._recent_size
        packed, contexts, pack, raw = self._packed, self._context_index, self._pack, msgspec.Raw
        last = -1
        match: Callable[[Any], Any] | None = None
        for key, (deadline, p) in items[:cut]:
            if last != self._last or match is None:  # first, or _pack found another template
                last = self._last
                match = self._coders[last][0] if last < len(self._coders) else None
            features = p.features
            context = contexts.get((p.model, p.version, *p.tags.items()))
            found = None
            if match is not None and context is not None and type(features) is raw:
                found = match(features)
            if found is None:
                packed[key] = pack(p, deadline)
                continue
            values = found.groups()
            row = (
                deadline,
                context,
                p.timestamp,
                p.value,
                p.score,
                p.probabilities,
                _TEMPLATED + 2 * last + 1,
                b"\x00".join(values) if values else None,
            )
            packed[key] = _encode(row)
        self._recent = dict(items[cut:])

    def _pack(self, p: Prediction, deadline: float) -> bytes:
        context: Any = self._context_index.get((p.model, p.version, *p.tags.items()))
        if context is None:
            context = self._new_context(p)
        features: Any = p.features
        kind = type(features)
        if kind is dict or (kind is not msgspec.Raw and isinstance(features, dict)):
            form = _DICT
        else:
            raw = kind is msgspec.Raw
            coders, last = self._coders, self._last
            found = coders[last][0](features) if last < len(coders) else None
            if found is None:
                last, found = self._cut(features)
            if found is None:
                form, features = (_RAW if raw else _BYTES), bytes(features)
            else:
                form = _TEMPLATED + 2 * last + raw
                values = found.groups()
                features = b"\x00".join(values) if values else None
        row = (deadline, context, p.timestamp, p.value, p.score, p.probabilities, form, features)
        try:
            return _encode(row)
        except OverflowError:  # an integer beyond 64 bits in dict features: kept as JSON
            return _encode((*row[:6], _JSON, msgspec.json.encode(p.features)))

    def _unpack(self, key: str, value: bytes) -> Prediction:
        _, context, timestamp, prediction, score, probabilities, form, features = _decode(value)
        if type(context) is int:
            model, version, tags = self._contexts[context]
            tags = dict(tags)
        else:
            model, version, tags = context
        if form >= _TEMPLATED:
            template = (form - _TEMPLATED) >> 1
            if template >= len(self._coders):
                self._compile()
            if features is None:  # no values: the text is the template
                text = self._templates[template][0]
            else:
                text = self._coders[template][1] % tuple(features.split(b"\x00"))
            features = msgspec.Raw(text) if (form - _TEMPLATED) & 1 else text
        elif form == _RAW:
            features = msgspec.Raw(features)
        elif form == _JSON:
            features = msgspec.json.decode(features)
        # As the named tuple's own constructor would, without its Python-level __new__.
        return _new_tuple(
            Prediction,
            (key, model, version, timestamp, prediction, score, probabilities, features, tags),
        )

    def _new_context(self, p: Prediction) -> Any:
        if len(self._contexts) >= _CONTEXTS:
            return (p.model, p.version, p.tags)
        self._context_index[p.model, p.version, *p.tags.items()] = len(self._contexts)
        self._contexts.append((p.model, p.version, dict(p.tags)))
        return len(self._contexts) - 1

    def _cut(self, text: Any) -> tuple[int, re.Match[bytes] | None]:
        """A template that ``text`` (bytes or Raw) fits and its match, or a None match when it
        fits none (nested, escaped strings, too many shapes): tried in turn, then learnt."""
        if len(self._coders) < len(self._templates):
            self._compile()
        for index, (match, _) in enumerate(self._coders):
            found = match(text)
            if found is not None:
                self._last = index
                return index, found
        if len(self._templates) >= _TEMPLATES:
            return 0, None
        pieces = _template(bytes(text))
        # A template without a hole fits one text only: worth a place only for a short one ({}).
        if pieces is None or pieces in self._templates or (len(pieces) == 1 and len(text) > 8):
            return 0, None
        self._templates.append(pieces)
        self._compile()
        self._last = len(self._templates) - 1
        return self._last, self._coders[-1][0](text)

    def _compile(self) -> None:
        self._coders = [
            (
                re.compile(_HOLE.join(re.escape(p) for p in pieces), re.DOTALL).fullmatch,
                b"%b".join(p.replace(b"%", b"%%") for p in pieces),
            )
            for pieces in self._templates
        ]


def _template(text: bytes) -> tuple[bytes, ...] | None:
    """The pieces of a flat JSON object's text between its values, or None if it is not one.

    >>> _template(b'{"a": 1, "b": "x"}')
    (b'{"a": ', b', "b": ', b'}')
    """
    tokens = _TOKENS.findall(text)
    if b"".join(tokens) != text:
        return None
    pieces: list[bytes] = []
    current: list[bytes] = []
    value_next = False
    for token in tokens:
        if value_next and not token.isspace():
            if token in (b"{", b"["):
                return None
            pieces.append(b"".join(current))
            current = []
            value_next = False
            continue
        current.append(token)
        if not token.isspace():
            value_next = token == b":"
    pieces.append(b"".join(current))
    return tuple(pieces)

"""State as versioned data: an object graph to msgpack-ready data and back, allowlisted types only.

A checkpoint is read back by a process that trusts nothing in it, so it is data,
never pickle (unpickling runs whatever code the file names). ``to_data`` turns
the monitor's object graph into lists, dicts and scalars; ``from_data`` rebuilds
only the types it knows:

- builtins: ``None``, ``bool``, ``int``, ``float`` (with ``inf`` and ``nan``), ``str``,
  ``bytes``, ``list``, ``tuple``, ``dict``, ``set``, ``frozenset``;
- ``collections``: ``deque`` (with its ``maxlen``), ``OrderedDict``, ``Counter``,
  ``defaultdict`` whose factory is one of ``FACTORIES``;
- numpy arrays (dtype, shape and bytes; no object dtype) and numpy scalars;
- ``msgspec.Struct`` classes of those modules, by their fields;
- ``random.Random`` (its state as numbers);
- ``msgspec.Raw`` (undecoded JSON a prediction carries), as its bytes;
- instances of classes defined in ``ALLOWED_MODULES`` (predwatch's own and river's),
  made with ``cls.__new__(cls)`` and their ``__dict__`` and ``__slots__`` set as
  attributes (as the class's ``__getstate__`` gives them when it has one); no
  ``__reduce__``, ``__setstate__`` or ``__init__`` of theirs runs when reading.
  Enum members are rebuilt by value, classes and functions of those modules by
  name, a method bound to such an instance by its name; a named tuple or a dict
  subclass of those modules keeps its items. The compiled types of
  ``OPAQUE_MODULE`` (ADWIN's window) are made from numbers and given their state
  as bytes that river's own decoder reads.

Anything else is refused when the state is written (``StateError``), so a
checkpoint that was written can be read. Objects seen twice are written once
and come back shared, as they were (cycles included).

>>> from collections import deque
>>> window = deque([1.0, float("inf")], maxlen=3)
>>> data = to_data({"window": window, ("a", 1): {2, 3}})
>>> back = from_data(data)
>>> back["window"], back["window"].maxlen, back[("a", 1)]
(deque([1.0, inf], maxlen=3), 3, {2, 3})
>>> to_data(open)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
predwatch.state.codec.StateError: cannot write io.open to a checkpoint: only builtins, ...
"""

from __future__ import annotations

import enum
import importlib
import random
import types
from collections import Counter, OrderedDict, defaultdict, deque
from typing import Any

import msgspec
import numpy as np
from river.utils import VectorDict

__all__ = ["ALLOWED_MODULES", "FACTORIES", "StateError", "from_data", "to_data"]

ALLOWED_MODULES = ("predwatch", "river")
"""Top-level packages whose classes (and functions, by name) a checkpoint may hold."""
OPAQUE_MODULE = "river._river_rust.drift"
"""Compiled river types (no attributes) whose state is bytes decoded by river itself."""

FACTORIES: dict[str, Any] = {
    "int": int,
    "float": float,
    "list": list,
    "dict": dict,
    "set": set,
    "Counter": Counter,
    "OrderedDict": OrderedDict,
}
"""The ``defaultdict`` factories a checkpoint may name."""

_SCALARS = (str, bytes, bool, float, type(None))
_DEFAULT_GETSTATE = getattr(object, "__getstate__", None)
_INT64 = (-(2**63), 2**64 - 1)
_ALLOWED_TEXT = (
    "only builtins, collections, numpy arrays and classes of predwatch and river are allowed"
)


class StateError(ValueError):
    """State that cannot be written or read as checkpoint data; the message says what."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.where: list[str] = []  # the classes holding the value, outermost first


def _allowed(module: str) -> bool:
    return module.split(".", 1)[0] in ALLOWED_MODULES


def _name_of(obj: Any) -> str:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise StateError(f"cannot write {obj!r} to a checkpoint: {_ALLOWED_TEXT}")
    name = f"{module}:{qualname}"
    if not _allowed(module) or "<" in qualname:
        raise StateError(f"cannot write {module}.{qualname} to a checkpoint: {_ALLOWED_TEXT}")
    return name


def _lookup(name: Any) -> Any:
    """The class or function an allowlisted ``module:qualname`` names, or ``StateError``."""
    if not isinstance(name, str) or ":" not in name:
        raise StateError(f"a checkpoint names {name!r}, which is not a module:name")
    module, qualname = name.split(":", 1)
    if not _allowed(module) or "<" in qualname:
        raise StateError(f"a checkpoint names {name}, which is not allowed: {_ALLOWED_TEXT}")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise StateError(f"a checkpoint names {name}, which does not exist here") from error
    # What a name reaches must be defined in an allowed module, not merely imported there
    # (``predwatch.x:os.system`` would otherwise reach ``os``).
    own = getattr(found, "__module__", None)
    if isinstance(found, types.ModuleType) or not isinstance(own, str) or not _allowed(own):
        raise StateError(f"a checkpoint names {name}, which is not allowed: {_ALLOWED_TEXT}")
    return found


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and slot not in names:
                names.append(slot)
    return names


class _Writer:
    def __init__(self) -> None:
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # objects memoised by id stay alive while writing

    def remember(self, obj: Any) -> int:
        index = len(self.memo)
        self.memo[id(obj)] = index
        self.keep.append(obj)
        return index

    def write(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _SCALARS:
            return obj
        if kind is int:
            return obj if _INT64[0] <= obj <= _INT64[1] else ["bigint", str(obj)]
        seen = self.memo.get(id(obj))
        if seen is not None:
            return ["ref", seen]
        if kind is list:
            return ["list", self.remember(obj), [self.write(x) for x in obj]]
        if kind is dict:
            return ["dict", self.remember(obj), self.pairs(obj)]
        if kind is tuple:
            items = [self.write(x) for x in obj]
            return ["tuple", self.remember(obj), items]
        if kind is set or kind is frozenset:
            return [kind.__name__, self.remember(obj), [self.write(x) for x in obj]]
        if kind is deque:
            return ["deque", self.remember(obj), obj.maxlen, [self.write(x) for x in obj]]
        if kind is OrderedDict or kind is Counter:
            return [kind.__name__, self.remember(obj), self.pairs(obj)]
        if kind is defaultdict:
            factory = next((n for n, f in FACTORIES.items() if f is obj.default_factory), None)
            if factory is None and obj.default_factory is not None:
                raise StateError(
                    f"cannot write a defaultdict of {obj.default_factory!r} to a checkpoint: "
                    f"its factory must be one of {', '.join(FACTORIES)}"
                )
            return ["defaultdict", self.remember(obj), factory, self.pairs(obj)]
        if kind is np.ndarray:
            return self.array(obj)
        if isinstance(obj, np.generic):
            return ["npscalar", self.array(np.asarray(obj))]
        if kind is random.Random:  # river's sampling: the generator's internal state
            version, internal, gauss = obj.getstate()
            return ["random", self.remember(obj), version, list(internal), gauss]
        if kind is msgspec.Raw:  # a prediction's undecoded features: its JSON bytes
            return ["raw", bytes(obj)]
        if kind is VectorDict:  # river's compiled dict of weights (a regression leaf's model)
            items, default, mask, _ = obj.__reduce__()[1]
            if default is not None or mask is not None:
                raise StateError("cannot write a VectorDict with a default or a mask")
            return ["vectordict", self.remember(obj), self.pairs(items)]
        if isinstance(obj, msgspec.Struct):  # e.g. a reference profile
            name = _name_of(kind)
            values = [self.write(getattr(obj, f)) for f in kind.__struct_fields__]
            return ["struct", self.remember(obj), name, values]
        if isinstance(obj, enum.Enum):
            return ["enum", _name_of(kind), self.write(obj.value)]
        if kind is types.MethodType:  # e.g. a window's ``new`` of its owner's statistics
            return ["method", self.write(obj.__self__), obj.__func__.__name__]
        if isinstance(obj, (type, types.FunctionType | types.BuiltinFunctionType)):
            return ["name", _name_of(obj)]
        return self.instance(obj)

    def pairs(self, mapping: Any) -> list[Any]:
        flat: list[Any] = []
        for key, value in mapping.items():
            flat.append(self.write(key))
            flat.append(self.write(value))
        return flat

    def array(self, array: np.ndarray) -> list[Any]:
        if array.dtype.hasobject:
            raise StateError("cannot write a numpy array of Python objects to a checkpoint")
        contiguous = np.ascontiguousarray(array)
        return ["ndarray", array.dtype.str, list(array.shape), contiguous.tobytes()]

    def instance(self, obj: Any) -> list[Any]:
        kind = type(obj)
        name = _name_of(kind)
        if isinstance(obj, list | set | deque) or (
            isinstance(obj, tuple) and not hasattr(kind, "_fields")
        ):
            raise StateError(f"cannot write {name}, a subclass of a container, to a checkpoint")
        attributes = getattr(obj, "__dict__", None)
        if attributes is None and not _slot_names(kind) and not isinstance(obj, tuple):
            return self.opaque(obj, name)
        index = self.remember(obj)
        items = [self.write(x) for x in obj] if isinstance(obj, tuple) else None
        entries = self.pairs(obj) if isinstance(obj, dict) else None
        if getattr(kind, "__getstate__", None) is not _DEFAULT_GETSTATE and attributes is not None:
            attributes = obj.__getstate__()  # the class leaves out what it rebuilds on use
            if not isinstance(attributes, dict):
                raise StateError(f"cannot write {name}: its __getstate__ does not give a dict")
        try:
            fields = self.pairs(attributes) if attributes else []
        except StateError as error:
            error.where.insert(0, kind.__qualname__)
            raise
        slots = [
            [slot, self.write(getattr(obj, slot))]
            for slot in _slot_names(kind)
            if hasattr(obj, slot)
        ]
        return ["object", index, name, items, fields, slots, entries]

    def opaque(self, obj: Any, name: str) -> list[Any]:
        """A compiled river type (ADWIN's window): its constructor arguments and state bytes."""
        if not name.startswith(OPAQUE_MODULE + ":"):
            raise StateError(f"cannot write {name} to a checkpoint: it has no attributes to keep")
        arguments = obj.__getnewargs__() if hasattr(obj, "__getnewargs__") else ()
        state = obj.__getstate__()
        if not isinstance(state, bytes) or not all(type(a) in (*_SCALARS, int) for a in arguments):
            raise StateError(f"cannot write {name} to a checkpoint: its state is not bytes")
        return ["opaque", self.remember(obj), name, list(arguments), state]


class _Reader:
    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}

    def keep(self, index: Any, obj: Any) -> Any:
        self.memo[index] = obj
        return obj

    def read(self, data: Any) -> Any:
        if not isinstance(data, list):
            if isinstance(data, _SCALARS) or type(data) is int:
                return data
            raise StateError(f"a checkpoint holds a {type(data).__name__} where a value belongs")
        try:
            tag = data[0]
            if tag == "ref":
                return self.memo[data[1]]
            if tag == "bigint":
                return int(data[1])
            if tag == "list":
                out: list[Any] = self.keep(data[1], [])
                out.extend(self.read(x) for x in data[2])
                return out
            if tag in ("dict", "OrderedDict", "Counter"):
                mapping = self.keep(
                    data[1], {"dict": dict, "OrderedDict": OrderedDict}.get(tag, Counter)()
                )
                self.fill(mapping, data[2])
                return mapping
            if tag == "defaultdict":
                factory = None if data[2] is None else FACTORIES[data[2]]
                mapping = self.keep(data[1], defaultdict(factory))
                self.fill(mapping, data[3])
                return mapping
            if tag == "tuple":
                return self.keep(data[1], tuple(self.read(x) for x in data[2]))
            if tag == "set":
                return self.keep(data[1], {self.read(x) for x in data[2]})
            if tag == "frozenset":
                return self.keep(data[1], frozenset(self.read(x) for x in data[2]))
            if tag == "deque":
                queue: deque[Any] = self.keep(data[1], deque(maxlen=data[2]))
                queue.extend(self.read(x) for x in data[3])
                return queue
            if tag == "ndarray":
                dtype = np.dtype(data[1])
                if dtype.hasobject:
                    raise StateError("a checkpoint holds a numpy array of Python objects")
                return np.frombuffer(data[3], dtype=dtype).reshape(data[2]).copy()
            if tag == "npscalar":
                return self.read(data[1])[()]
            if tag == "random":
                generator = self.keep(data[1], random.Random())
                generator.setstate((data[2], tuple(data[3]), data[4]))
                return generator
            if tag == "raw":
                return msgspec.Raw(bytes(data[1]))
            if tag == "vectordict":
                flat = data[2]
                items = {
                    self.read(k): self.read(v) for k, v in zip(flat[::2], flat[1::2], strict=True)
                }
                return self.keep(data[1], VectorDict(items))
            if tag == "enum":
                return _lookup(data[1])(self.read(data[2]))
            if tag == "method":
                owner = self.read(data[1])
                if type(owner).__module__.split(".", 1)[0] not in ALLOWED_MODULES:
                    raise StateError("a checkpoint names a method of a class that is not allowed")
                method = getattr(owner, data[2])
                if getattr(method, "__self__", None) is not owner:
                    raise StateError(f"a checkpoint names {data[2]!r}, which is not a method")
                return method
            if tag == "name":
                return _lookup(data[1])
            if tag == "struct":
                cls = _lookup(data[2])
                if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
                    raise StateError(f"a checkpoint names {data[2]}, which is not a struct")
                values = [self.read(x) for x in data[3]]
                return self.keep(
                    data[1], cls(**dict(zip(cls.__struct_fields__, values, strict=False)))
                )
            if tag == "opaque":
                return self.opaque(data)
            if tag == "object":
                return self.instance(data)
        except StateError:
            raise
        except (LookupError, TypeError, ValueError) as error:
            raise StateError(
                f"a checkpoint holds a malformed {data[:1]!r} entry ({error})"
            ) from error
        raise StateError(f"a checkpoint holds an unknown entry {str(data[:1])[:40]}")

    def opaque(self, data: list[Any]) -> Any:
        _, index, name, arguments, state = data
        if not name.startswith(OPAQUE_MODULE + ":") or not isinstance(state, bytes):
            raise StateError(f"a checkpoint holds compiled state of {name}, which is not allowed")
        if not all(type(a) in (*_SCALARS, int) for a in arguments):
            raise StateError(f"a checkpoint gives {name} arguments that are not numbers")
        obj = _lookup(name)(*arguments)
        try:
            obj.__setstate__(state)  # river's own decoder of its compiled type's bytes
        except BaseException as error:
            # Bytes river cannot decode make its Rust code panic: pyo3 raises PanicException,
            # a BaseException; anything else (an interrupt) goes on.
            if type(error).__name__ != "PanicException" and not isinstance(error, Exception):
                raise
            raise StateError(f"a checkpoint holds state of {name} that river cannot read") from None
        return self.keep(index, obj)

    def fill(self, mapping: Any, flat: list[Any]) -> None:
        for i in range(0, len(flat), 2):
            key = self.read(flat[i])
            mapping[key] = self.read(flat[i + 1])

    def instance(self, data: list[Any]) -> Any:
        _, index, name, items, fields, slots, entries = data
        cls = _lookup(name)
        if not isinstance(cls, type):
            raise StateError(f"a checkpoint names {name}, which is not a class")
        if items is not None:  # a named tuple: the tuple is made without the class's code
            obj = self.keep(index, tuple.__new__(cls, [self.read(x) for x in items]))
        else:
            made: Any = cls.__new__  # object's, or a base class's (e.g. a pydantic model's)
            obj = self.keep(index, made(cls))
        slot_names = _slot_names(cls)
        for i in range(0, len(fields), 2):
            # Instance attributes never reach special method lookup, except the class itself.
            if not isinstance(fields[i], str) or fields[i] == "__class__":
                raise StateError(f"a checkpoint gives {name} an attribute {fields[i]!r}")
            object.__setattr__(obj, fields[i], self.read(fields[i + 1]))
        for slot, value in slots:
            if slot not in slot_names:
                raise StateError(f"a checkpoint gives {name} a slot {slot!r} it does not have")
            object.__setattr__(obj, slot, self.read(value))
        if entries is not None:  # a dict subclass's own entries
            if not isinstance(obj, dict):
                raise StateError(f"a checkpoint gives entries to {name}, which is not a dict")
            for i in range(0, len(entries), 2):
                dict.__setitem__(obj, self.read(entries[i]), self.read(entries[i + 1]))
        return obj


def to_data(obj: Any) -> Any:
    """``obj`` as lists, dicts and scalars msgpack can write; ``StateError`` if it holds a type
    that is not allowed."""
    try:
        return _Writer().write(obj)
    except StateError as error:
        if error.where:
            raise StateError(f"{error} (in {' > '.join(error.where)})") from None
        raise


def from_data(data: Any) -> Any:
    """The object graph ``to_data`` wrote; ``StateError`` on anything not allowed or malformed."""
    try:
        return _Reader().read(data)
    except RecursionError:
        raise StateError("a checkpoint nests values too deeply") from None

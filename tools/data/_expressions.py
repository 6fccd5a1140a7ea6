r"""A small, safe selection language over awkward arrays: tokenizer, recursive-descent parser, evaluator.

Used by ``summarize`` (:mod:`tools.data.summarize`). The grammar, lowest precedence first
(``&`` and ``|`` are synonyms of ``and`` and ``or``; ``a < b < c`` means ``a < b and b < c``)::

    or      := and (("or" | "|") and)*
    and     := not (("and" | "&") not)*
    not     := "not" not | compare
    compare := sum ((">" | ">=" | "<" | "<=" | "==" | "!=") sum)*
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | postfix
    postfix := atom ("[" INTEGER "]")*
    atom    := NUMBER | PATH | FUNCTION "(" or ")" | "(" or ")"

``PATH`` is a dotted field path (``jets.pt``, ``m_hat_gev``), resolved by a callback; ``FUNCTION`` is
one of ``abs count any all sum min max len``. The text is never handed to ``eval``, ``exec`` or
``compile``: names with a double underscore, Python keywords other than ``and or not``, strings and
unknown functions are refused while parsing, with the offending token and its 0-based position.

Values are per event (one per row), per object (``jets.pt``: a list per event) or constants.
Reductions (``count any all sum min max len``) turn per-object values into per-event ones;
``x[k]`` picks the k-th object of each event and is missing where an event has fewer. A comparison
with a missing value is false, so an event without a leading jet fails ``jets.pt[0] > 400``.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FUNCTIONS", "Binary", "Call", "ExpressionError", "FieldPath", "Index", "Node", "Number", "Unary", "Value",
    "evaluate", "evaluate_condition", "field_paths", "parse",
]

FUNCTIONS = ("abs", "count", "any", "all", "sum", "min", "max", "len")
COMPARISONS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal, "==": np.equal,
               "!=": np.not_equal}
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
_MAX_LENGTH, _MAX_DEPTH = 1000, 40
_TOKEN = re.compile(r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
                    r"|(?P<op>>=|<=|==|!=|[<>+\-*/()\[\]&|])", re.ASCII)
_HINTS = {'"': "strings are not allowed; compare fields with numbers, e.g. jets.pt > 30",
          "'": "strings are not allowed; compare fields with numbers, e.g. jets.pt > 30",
          "=": "use == to test equality", "!": "use != or not", "~": "use not",
          ".": "a field path is names joined by single dots, e.g. jets.pt",
          ",": f"functions take one argument: {', '.join(FUNCTIONS)}"}
_WORDS = ("and", "or", "not")
_UNITS = ("ev", "kev", "mev", "gev", "tev", "pb", "fb", "nb", "rad", "cm", "mm")
_OPERAND = "expected a number, a field path such as jets.pt, one of the functions " + ", ".join(FUNCTIONS) + " or '('"


class ExpressionError(ValueError):
    """A selection that cannot be parsed or evaluated; ``token`` and ``position`` say where."""

    def __init__(self, message: str, token: str = "", position: int = -1) -> None:
        super().__init__(message)
        self.token, self.position = token, position


@dataclass(frozen=True)
class Token:
    kind: str  # number | path | op | end
    text: str
    position: int


@dataclass(frozen=True)
class Number:
    value: float
    position: int


@dataclass(frozen=True)
class FieldPath:
    path: str
    position: int


@dataclass(frozen=True)
class Index:
    operand: Node
    index: int
    position: int


@dataclass(frozen=True)
class Call:
    function: str
    argument: Node
    position: int


@dataclass(frozen=True)
class Unary:
    op: str  # "not" | "-"
    operand: Node
    position: int


@dataclass(frozen=True)
class Binary:
    op: str  # "and" | "or" | a comparison | + - * /
    left: Node
    right: Node
    position: int


Node = Number | FieldPath | Index | Call | Unary | Binary


# parsing ---------------------------------------------------------------------------------------


def parse(text: str) -> Node:
    """The syntax tree of ``text``; raises :class:`ExpressionError` at the first offending token.

    >>> parse("count(jets.pt > 30) >= 4")  # doctest: +ELLIPSIS
    Binary(op='>=', left=Call(function='count', argument=Binary(op='>', ...), position=0), ...)
    """
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"it is {len(text)} characters long; keep it under {_MAX_LENGTH}")
    if not text.strip():
        raise ExpressionError("it is empty; give a condition such as jets.pt > 30, or leave it unset")
    return _Parser(text).parse()


class _Parser:
    """Recursive descent over a lazily read token stream, so the first offending token is the one named."""

    def __init__(self, text: str) -> None:
        self.text, self.offset, self.depth = text, 0, 0
        self.previous: Token | None = None
        self.current = self._lex()

    def parse(self) -> Node:
        node = self._or()
        if self.current.kind == "path" and self.current.text.lower() in _UNITS:
            raise self._unexpected("write numbers without units (momenta, energies and masses are in GeV)")
        if self.current.kind != "end":
            raise self._unexpected("after a complete condition; join conditions with and / or")
        return node

    def _lex(self) -> Token:
        while self.offset < len(self.text) and self.text[self.offset].isspace():
            self.offset += 1
        if self.offset == len(self.text):
            return Token("end", "", self.offset)
        match = _TOKEN.match(self.text, self.offset)
        if match is None:
            char = self.text[self.offset]
            hint = _HINTS.get(char, "allowed: field paths, numbers, > >= < <= == !=, and or not & |, + - * /, "
                                    "( ), [k] and the functions " + ", ".join(FUNCTIONS))
            raise ExpressionError(f"unexpected {char!r} at position {self.offset}; {hint}", char, self.offset)
        kind, text = match.lastgroup or "op", match.group()
        if kind == "path" and text in _WORDS:
            kind = "op"
        elif kind == "path":
            _check_path(text, self.offset)
        token = Token(kind, text, self.offset)
        self.offset = match.end()
        return token

    def _advance(self) -> Token:
        self.previous, token = self.current, self.current
        self.current = self._lex()
        return token

    def _accept(self, *texts: str) -> Token | None:
        if self.current.kind == "op" and self.current.text in texts:
            return self._advance()
        return None

    def _unexpected(self, hint: str) -> ExpressionError:
        token = self.current
        shown = repr(token.text) if token.kind != "end" else "end of selection"
        return ExpressionError(f"unexpected {shown} at position {token.position}; {hint}", token.text, token.position)

    def _nested(self, parse: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self._unexpected(f"the selection nests deeper than {_MAX_DEPTH} levels; simplify it")
        node = parse()
        self.depth -= 1
        return node

    def _binary(self, operators: tuple[str, ...], operand: Callable[[], Node], name: str = "") -> Node:
        node = operand()
        while token := self._accept(*operators):
            node = Binary(name or token.text, node, operand(), token.position)
        return node

    def _or(self) -> Node:
        return self._binary(("or", "|"), self._and, "or")

    def _and(self) -> Node:
        return self._binary(("and", "&"), self._not, "and")

    def _not(self) -> Node:
        if token := self._accept("not"):
            return Unary("not", self._nested(self._not), token.position)
        return self._compare()

    def _compare(self) -> Node:
        left = self._sum()
        node: Node | None = None
        while token := self._accept(*COMPARISONS):
            right = self._sum()
            test = Binary(token.text, left, right, token.position)
            node = test if node is None else Binary("and", node, test, token.position)
            left = right
        return left if node is None else node

    def _sum(self) -> Node:
        return self._binary(("+", "-"), self._product)

    def _product(self) -> Node:
        return self._binary(("*", "/"), self._unary)

    def _unary(self) -> Node:
        if token := self._accept("-"):
            return Unary("-", self._nested(self._unary), token.position)
        node = self._atom()
        while bracket := self._accept("["):
            node = self._index(node, bracket.position)
        return node

    def _index(self, node: Node, opened: int) -> Node:
        token = self.current
        if token.kind != "number" or not token.text.isdigit():
            raise self._unexpected("an index is a whole number >= 0, e.g. jets.pt[0] for the leading jet")
        self._advance()
        if not self._accept("]"):
            raise self._unexpected(f"expected ']' to close '[' at position {opened}")
        return Index(node, int(token.text), opened)

    def _atom(self) -> Node:
        token = self.current
        if token.kind == "number":
            self._advance()
            return Number(float(token.text), token.position)
        if token.kind == "path":
            self._advance()
            if self.current.text != "(" or self.current.kind != "op":
                return FieldPath(token.text, token.position)
            if token.text not in FUNCTIONS:
                raise ExpressionError(f"unknown function {token.text!r} at position {token.position}; allowed "
                                      f"functions: {', '.join(FUNCTIONS)}", token.text, token.position)
            self._advance()
            return Call(token.text, self._closed(token.position), token.position)
        if self._accept("("):
            return self._closed(token.position)
        hint = _OPERAND
        if token.text in COMPARISONS and self.previous is not None and self.previous.text in COMPARISONS:
            hint = "use > >= < <= == !="
        raise self._unexpected(hint)

    def _closed(self, opened: int) -> Node:
        node = self._nested(self._or)
        if not self._accept(")"):
            raise self._unexpected(f"expected ')' to close '(' at position {opened}")
        return node


def _check_path(path: str, position: int) -> None:
    """Refuse what could reach Python objects: dunder names and keywords (the only words are and, or, not)."""
    for part in path.split("."):
        if part.startswith("__") or keyword.iskeyword(part):
            why = ("names with a double underscore are not fields" if part.startswith("__") else
                   "Python keywords are not allowed (the only words are and, or, not)")
            raise ExpressionError(f"unexpected {part!r} at position {position}; {why}; use field paths such as "
                                  "jets.pt", part, position)
        position += len(part) + 1


def field_paths(node: Node) -> list[str]:
    """Every field path in the tree, in order of appearance, without repeats."""
    match node:
        case FieldPath(path=path):
            return [path]
        case Index(operand=child) | Call(argument=child) | Unary(operand=child):
            return field_paths(child)
        case Binary(left=left, right=right):
            return list(dict.fromkeys(field_paths(left) + field_paths(right)))
    return []


# evaluation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """An evaluated sub-expression: the data, whether it is a condition, its depth and its collections.

    ``depth`` is 0 for a constant, 1 for one value per event, 2 for one per object; ``collections``
    names the top-level collections whose objects a per-object value runs over.
    """

    data: Any
    condition: bool
    depth: int
    collections: frozenset[str] = frozenset()


Resolver = Callable[[str, int], Any]
"""Maps a field path (and its position, for messages) to an awkward array, or raises ExpressionError."""


def evaluate_condition(node: Node, resolve: Resolver) -> Value:
    """Evaluate a selection; the result must be a condition (pass/fail per event or object)."""
    value = evaluate(node, resolve)
    if not value.condition:
        raise ExpressionError("it is a number, not a condition; compare it, e.g. jets.pt > 30 or "
                              "count(jets.pt > 30) >= 4", "", node.position)
    return value


def evaluate(node: Node, resolve: Resolver) -> Value:
    """Evaluate ``node`` with awkward; field paths are looked up with ``resolve``."""
    match node:
        case Number(value=number):
            return Value(number, condition=False, depth=0)
        case FieldPath(path=path, position=position):
            return _field(resolve(path, position), path, position)
        case Index():
            return _index(evaluate(node.operand, resolve), node)
        case Call(function="len" | "count", argument=FieldPath(path=path, position=position)):
            return _reduce(_collection_or_field(resolve(path, position), path, position), node)
        case Call():
            return _reduce(evaluate(node.argument, resolve), node)
        case Unary():
            return _unary(evaluate(node.operand, resolve), node)
        case Binary():
            return _binary(evaluate(node.left, resolve), evaluate(node.right, resolve), node)
    raise ExpressionError(f"cannot evaluate {node!r}")  # unreachable: the parser builds only the nodes above


def _depth(data: Any) -> int:
    return int(getattr(data, "ndim", 0))


def _collection_or_field(data: Any, path: str, position: int) -> Value:
    """``len(jets)`` and ``count(jets)`` take a whole collection as well as a field."""
    import awkward as ak

    if ak.fields(data):
        return Value(data, False, _depth(data), _collections(path, _depth(data)))
    return _field(data, path, position)


def _field(data: Any, path: str, position: int) -> Value:
    import awkward as ak

    if ak.fields(data):
        raise ExpressionError(f"{path!r} at position {position} is a collection, not a number; use one of its "
                              f"fields ({path}.{ak.fields(data)[0]}) or len({path})", path, position)
    depth = _depth(data)
    is_bool = np.issubdtype(ak.to_numpy(ak.flatten(data, axis=None)[:0]).dtype, np.bool_)
    return Value(data, is_bool, depth, _collections(path, depth))


def _collections(path: str, depth: int) -> frozenset[str]:
    """The top-level collection a per-object path runs over (none for per-event values)."""
    return frozenset({path.partition(".")[0]}) if depth >= 2 else frozenset()


def _index(value: Value, node: Index) -> Value:
    import awkward as ak

    if value.depth < 2:
        raise ExpressionError(f"[{node.index}] at position {node.position} picks the k-th object of a per-object "
                              "value such as jets.pt; this value has one entry per event", "[", node.position)
    picked = ak.pad_none(value.data, node.index + 1, axis=1)[:, node.index]
    depth = value.depth - 1
    return Value(picked, value.condition, depth, value.collections if depth >= 2 else frozenset())


def _reduce(value: Value, node: Call) -> Value:
    """abs keeps the shape; the other functions reduce each event's (or object's) innermost list."""
    import awkward as ak

    name, where = node.function, f"{node.function}() at position {node.position}"
    if name == "abs":
        _need(not value.condition, f"{where} needs a number, not a condition", node)
        return Value(np.absolute(value.data), False, value.depth, value.collections)
    _need(value.depth >= 2, f"{where} needs per-object values such as jets.pt or jets.pt > 30; its argument "
          "has one value per event", node)
    if name in ("any", "all"):
        _need(value.condition, f"{where} needs a condition such as jets.pt > 30", node)
    if name in ("min", "max"):
        _need(not value.condition, f"{where} needs numbers such as jets.pt, not a condition", node)
    reducer = {"count": ak.count_nonzero if value.condition else ak.num, "len": ak.num, "any": ak.any,
               "all": ak.all, "sum": ak.count_nonzero if value.condition else ak.sum, "min": ak.min,
               "max": ak.max}[name]
    depth = value.depth - 1  # reduce the innermost list of the value (records may hold deeper lists)
    return Value(reducer(value.data, axis=depth), name in ("any", "all"), depth,
                 value.collections if depth >= 2 else frozenset())


def _unary(value: Value, node: Unary) -> Value:
    if node.op == "not":
        _need(value.condition, f"'not' at position {node.position} needs a condition such as jets.pt > 30", node)
        return Value(np.logical_not(value.data), True, value.depth, value.collections)
    _need(not value.condition, f"'-' at position {node.position} needs a number, not a condition", node)
    return Value(np.negative(value.data), False, value.depth, value.collections)


def _binary(left: Value, right: Value, node: Binary) -> Value:
    import awkward as ak

    logical = node.op in ("and", "or")
    wanted = "conditions such as jets.pt > 30" if logical else "numbers, not conditions"
    _need(left.condition == logical and right.condition == logical,
          f"{node.op!r} at position {node.position} needs {wanted} on both sides", node)
    function = {"and": np.logical_and, "or": np.logical_or, **COMPARISONS, **_ARITHMETIC}[node.op]
    try:
        with np.errstate(divide="ignore", invalid="ignore"):  # x / 0 gives ±inf or NaN, which fail cuts
            data = function(left.data, right.data)
    except ValueError:
        raise ExpressionError(
            f"{node.op!r} at position {node.position} combines per-object values of different collections "
            f"({', '.join(sorted(left.collections | right.collections))}) that have different numbers of objects "
            "per event; reduce one side with count/any/all/sum/min/max or pick one object with [0]",
            node.op, node.position) from None
    if node.op in COMPARISONS and isinstance(data, ak.Array):
        data = ak.fill_none(data, False)  # a missing object fails the cut
    return Value(data, logical or node.op in COMPARISONS, max(left.depth, right.depth),
                 left.collections | right.collections)


def _need(ok: bool, message: str, node: Node) -> None:
    if not ok:
        raise ExpressionError(message, getattr(node, "op", getattr(node, "function", "")), node.position)

"""The playbook expression language: ``when:``, ``assert``, ``precondition:``, ``verify:``
and the ``{{ ... }}`` templates in ``with:``.

Expressions are written in Python's expression syntax and evaluated by walking the syntax
tree that :func:`ast.parse` returns, allowing only the node types listed in
:data:`ALLOWED` — there is no ``eval``, no attribute of any Python object, no import,
no assignment, no power operator. Values are plain data (dicts, lists, strings, numbers,
booleans, None): vars and the results registered by earlier steps.

Why hand-written rather than Jinja2's ``SandboxedEnvironment``: the validator must know,
statically, which names an expression reads (so a step that uses ``st.master`` before the
step that registers ``st`` is refused with the file, the step and the field), and the
language is small: ~250 lines against a new dependency whose sandbox is about Python
objects this language never exposes.

>>> evaluate("st.master == target and len(st.replicas) >= 2",
...          {"st": {"master": "a:1", "replicas": ["b:1", "c:1"]}, "target": "a:1"})
True
>>> evaluate("nodes['a:1'].role", {"nodes": {"a:1": {"role": "master"}}})
'master'
>>> evaluate("all(n.link == 'up' for n in values(nodes))",
...          {"nodes": {"a": {"link": "up"}, "b": {"link": "down"}}})
False
>>> render("{{ master }}", {"master": "10.0.0.1:6379"})
'10.0.0.1:6379'
>>> render("replica of {{ st.master }} at {{ st.offset + 1 }}", {"st": {"master": "m:1", "offset": 9}})
'replica of m:1 at 10'
>>> sorted(names("a.b[c] and len(d) > 0 and all(x > 1 for x in e)"))
['a', 'c', 'd', 'e']
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from redisops.errors import BadInput

MAX_LENGTH = 2000
MAX_SEQUENCE = 100_000  # bound on lists built by comprehensions and range()
TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)


class ExprError(BadInput):
    """An expression that cannot be parsed, or fails while being evaluated."""


def _values(d: Any) -> list[Any]:
    _need(isinstance(d, Mapping), "values() takes a mapping")
    return list(d.values())


def _keys(d: Any) -> list[Any]:
    _need(isinstance(d, Mapping), "keys() takes a mapping")
    return list(d.keys())


def _items(d: Any) -> list[list[Any]]:
    _need(isinstance(d, Mapping), "items() takes a mapping")
    return [[k, v] for k, v in d.items()]


def _get(d: Any, key: Any, default: Any = None) -> Any:
    if isinstance(d, Mapping):
        return d.get(key, default)
    if isinstance(d, list) and isinstance(key, int) and -len(d) <= key < len(d):
        return d[key]
    return default


def _range(*args: Any) -> list[int]:
    _need(all(isinstance(a, int) for a in args), "range() takes integers")
    r = range(*args)
    _need(len(r) <= MAX_SEQUENCE, f"range() longer than {MAX_SEQUENCE}")
    return list(r)


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ExprError(message)


#: the functions an expression may call (by name; nothing else is callable)
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "sum": sum,
    "any": any,
    "all": all,
    "sorted": sorted,
    "round": round,
    "list": list,
    "values": _values,
    "keys": _keys,
    "items": _items,
    "get": _get,
    "range": _range,
}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}

#: every syntax node an expression may contain
ALLOWED: tuple[type, ...] = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    *_BINOPS,
    ast.Compare,
    *_CMPOPS,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Call,
    ast.ListComp,
    ast.GeneratorExp,
    ast.comprehension,
)


def parse(text: str) -> ast.Expression:
    """The checked syntax tree of ``text`` (ExprError names what is not allowed)."""
    if not isinstance(text, str):
        raise ExprError(f"expected an expression (text), got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"cannot parse {text!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, ALLOWED):
            raise ExprError(f"{type(node).__name__} is not allowed in an expression: {text!r}")
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS
        ):
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExprError(
                f"unknown function {called!r} in {text!r} (known: {', '.join(sorted(FUNCTIONS))})"
            )
        if isinstance(node, ast.Call) and node.keywords:
            raise ExprError(f"keyword arguments are not supported: {text!r}")
        if isinstance(node, ast.comprehension) and not isinstance(node.target, ast.Name):
            raise ExprError(f"a comprehension loops over one name: {text!r}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExprError(f"field names starting with '_' are not allowed: {text!r}")
    return tree


def names(text: str) -> set[str]:
    """The names ``text`` reads from its scope (loop variables and functions excluded)."""
    tree = parse(text)
    return _free(tree.body, frozenset())


def _free(node: ast.AST, bound: frozenset[str]) -> set[str]:
    if isinstance(node, ast.Name):
        return set() if node.id in bound else {node.id}
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        out: set[str] = set()
        inner = set(bound)
        for gen in node.generators:
            out |= _free(gen.iter, frozenset(inner))
            assert isinstance(gen.target, ast.Name)
            inner.add(gen.target.id)
            for cond in gen.ifs:
                out |= _free(cond, frozenset(inner))
        return out | _free(node.elt, frozenset(inner))
    if isinstance(node, ast.Call):
        out = set()
        for arg in node.args:
            out |= _free(arg, bound)
        return out
    out = set()
    for child in ast.iter_child_nodes(node):
        out |= _free(child, bound)
    return out


def evaluate(text: str, scope: Mapping[str, Any]) -> Any:
    """The value of ``text`` with ``scope`` as its names."""
    tree = parse(text)
    try:
        return _Eval(scope, text).eval(tree.body)
    except ExprError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise ExprError(f"{text!r}: {exc}") from None


def truth(text: str, scope: Mapping[str, Any]) -> bool:
    return bool(evaluate(text, scope))


class _Eval:
    def __init__(self, scope: Mapping[str, Any], text: str) -> None:
        self.scope = scope
        self.text = text

    def fail(self, message: str) -> ExprError:
        return ExprError(f"{self.text!r}: {message}")

    def eval(self, node: ast.AST) -> Any:
        method: Callable[[Any], Any] = getattr(self, "_" + type(node).__name__)
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.scope:
            return self.scope[node.id]
        if node.id in ("true", "false", "null"):  # YAML spellings people type
            return {"true": True, "false": False, "null": None}[node.id]
        raise self.fail(f"unknown name {node.id!r}")

    def _Attribute(self, node: ast.Attribute) -> Any:
        base = self.eval(node.value)
        return self._field(base, node.attr, ast.unparse(node.value))

    def _field(self, base: Any, key: Any, where: str) -> Any:
        if isinstance(base, Mapping):
            if key not in base:
                known = ", ".join(sorted(map(str, base))[:20])
                raise self.fail(f"{where} has no field {key!r} (it has: {known})")
            return base[key]
        if isinstance(base, (list, tuple, str)) and isinstance(key, int):
            try:
                return base[key]
            except IndexError:
                raise self.fail(f"{where}[{key}] is out of range (length {len(base)})") from None
        if base is None:
            raise self.fail(f"{where} is null (no value), so it has no {key!r}")
        raise self.fail(f"{where} is a {type(base).__name__}, not something with {key!r}")

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self.eval(node.value)
        if isinstance(node.slice, ast.Slice):
            s = node.slice
            lo, hi = (self.eval(x) if x is not None else None for x in (s.lower, s.upper))
            if s.step is not None or not isinstance(base, (list, tuple, str)):
                raise self.fail("only [a:b] slices of lists and strings are supported")
            return base[lo:hi]
        return self._field(base, self.eval(node.slice), ast.unparse(node.value))

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.eval(operand)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.fail(f"unary minus/plus needs a number, got {type(value).__name__}")
        return -value if isinstance(node.op, ast.USub) else +value

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Mult) and not (
            isinstance(left, (int, float)) and isinstance(right, (int, float))
        ):
            raise self.fail("* multiplies numbers only")
        return _BINOPS[type(node.op)](left, right)

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comp)
            if isinstance(op, (ast.Is, ast.IsNot)) and right is not None and left is not None:
                raise self.fail("'is' compares with None only (use ==)")
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _List(self, node: ast.List) -> list[Any]:
        return [self.eval(e) for e in node.elts]

    def _Tuple(self, node: ast.Tuple) -> list[Any]:
        return [self.eval(e) for e in node.elts]

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        if any(k is None for k in node.keys):
            raise self.fail("** in a dict is not supported")
        return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]

    def _Call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        fn = FUNCTIONS[node.func.id]
        args = [self.eval(a) for a in node.args]
        return fn(*args)

    def _comprehension(self, node: ast.ListComp | ast.GeneratorExp) -> list[Any]:
        out: list[Any] = []
        for scope in self._loops(node.generators, dict(self.scope)):
            out.append(_Eval(scope, self.text).eval(node.elt))
            if len(out) > MAX_SEQUENCE:
                raise self.fail(f"a comprehension longer than {MAX_SEQUENCE}")
        return out

    def _loops(
        self, gens: list[ast.comprehension], scope: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        if not gens:
            yield scope
            return
        gen, rest = gens[0], gens[1:]
        assert isinstance(gen.target, ast.Name)
        seq = _Eval(scope, self.text).eval(gen.iter)
        if isinstance(seq, Mapping):
            seq = list(seq)
        if not isinstance(seq, (list, tuple, str)):
            raise self.fail(f"cannot loop over a {type(seq).__name__}")
        for item in seq:
            inner = {**scope, gen.target.id: item}
            if all(_Eval(inner, self.text).eval(c) for c in gen.ifs):
                yield from self._loops(rest, inner)

    _ListComp = _comprehension
    _GeneratorExp = _comprehension


# ----------------------------------------------------------------------------- templates


def template_names(value: Any) -> set[str]:
    """The names the ``{{ }}`` templates in ``value`` (any nesting) read."""
    out: set[str] = set()
    for text in _strings(value):
        for m in TEMPLATE.finditer(text):
            out |= names(m.group(1))
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with its templates filled in. A string that is exactly one ``{{ x }}``
    keeps ``x``'s type (a list stays a list); inside text, values become text (lists and
    mappings as JSON)."""
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(v, scope) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    whole = TEMPLATE.fullmatch(value.strip())
    if whole is not None:
        return evaluate(whole.group(1), scope)

    def text(m: re.Match[str]) -> str:
        got = evaluate(m.group(1), scope)
        if isinstance(got, (dict, list)):
            return json.dumps(got, default=str)
        return "" if got is None else str(got)

    return TEMPLATE.sub(text, value)


def check_template(value: Any) -> None:
    """Raise ExprError if a template in ``value`` does not parse (or braces are unbalanced)."""
    for text in _strings(value):
        for m in TEMPLATE.finditer(text):
            parse(m.group(1))
        rest = TEMPLATE.sub("", text)
        if "{{" in rest or "}}" in rest:
            raise ExprError(f"unbalanced '{{{{' or '}}}}' in {text!r}")

"""Playbook files: the YAML format, loading, and static validation before anything runs.

A playbook::

    name: planned-switchover
    description: Move the master role to a chosen replica with no lost write.
    vars:
      master: {type: address, description: the current master}
      target: address                          # shorthand: just the type
      max_lag: {type: size, default: 1mb}
    steps:
      - name: read the cluster
        action: status
        with: {seeds: ["{{ master }}", "{{ target }}"]}
        register: before
      - name: switch over
        action: switchover
        when: before.master != target
        with: {master: "{{ master }}", to: "{{ target }}"}
        register: switch

Validation finds every problem at once and names the file, the step (number and name)
and the field: unknown top-level keys, step keys or actions; ``with:`` arguments the
action does not take or misses; literal values of the wrong type; expressions that do not
parse; names no var or earlier ``register:`` defines; duplicate step names or registers.
There are no includes: the whole procedure is in one file, so what is validated is what
runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redisops.errors import BadInput
from redisops.playbook import expr, vartypes

IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
TOP_KEYS = {"name", "description", "vars", "steps"}
VAR_KEYS = {"type", "default", "description", "required", "choices"}
STEP_KEYS = {
    "name",
    "action",
    "with",
    "when",
    "register",
    "on_failure",
    "precondition",
    "verify",
    "for_each",
    "as",
    "steps",
}
ON_FAILURE = ("abort", "continue")
#: names every expression can read without defining them
BUILTIN_NAMES = frozenset({"dry_run", "rehearsal", "run_id"})
#: extra names in ``precondition:`` (``now``: the cluster read just before the step) and
#: ``verify:`` (``now`` read just after it, and ``result``: what the step registers)
PRECONDITION_NAMES = frozenset({"now"})
VERIFY_NAMES = frozenset({"now", "result"})
RESERVED = BUILTIN_NAMES | PRECONDITION_NAMES | VERIFY_NAMES | frozenset(expr.FUNCTIONS)


class PlaybookInvalid(BadInput):
    """A playbook failed validation; ``errors`` lists every problem found (one per line)."""

    def __init__(self, errors: Sequence[str]) -> None:
        more = f" (and {len(errors) - 1} more problem(s); 'redisops playbook validate' lists them)"
        super().__init__(errors[0] + (more if len(errors) > 1 else ""))
        self.errors = list(errors)


@dataclass(frozen=True)
class VarSpec:
    name: str
    type: str = "str"
    default: Any = None
    required: bool = True
    description: str = ""
    choices: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "description": self.description,
            "choices": list(self.choices) if self.choices is not None else None,
        }


@dataclass(frozen=True)
class StepSpec:
    """One step as written. ``id`` is its number (``3``, or ``3.2`` inside a loop)."""

    id: str
    name: str
    action: str | None
    args: Mapping[str, Any] = field(default_factory=dict)
    when: str | None = None
    register: str | None = None
    on_failure: str = "abort"
    precondition: str | None = None
    verify: str | None = None
    for_each: Any = None  # a group: loop over this (a template or a list)
    as_name: str = "item"
    steps: tuple[StepSpec, ...] = ()
    line: int | None = None

    @property
    def n(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def is_group(self) -> bool:
        return self.for_each is not None

    @property
    def label(self) -> str:
        return f"step {self.id} '{self.name}'"

    def digest(self) -> str:
        """A hash of the step as written: a resumed run refuses a step that changed."""
        text = repr(
            (
                self.name,
                self.action,
                sorted(self.args.items(), key=lambda kv: kv[0]),
                self.when,
                self.register,
                self.on_failure,
                self.precondition,
                self.verify,
                self.for_each,
                self.as_name,
                [s.digest() for s in self.steps],
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.is_group:
            out.update(
                for_each=self.for_each,
                **{"as": self.as_name},
                steps=[s.to_dict() for s in self.steps],
            )
        else:
            out.update(action=self.action, **{"with": dict(self.args)})
        for key in ("when", "register", "precondition", "verify"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.on_failure != "abort":
            out["on_failure"] = self.on_failure
        return out


@dataclass(frozen=True)
class Playbook:
    path: Path
    name: str
    description: str
    vars: tuple[VarSpec, ...]
    steps: tuple[StepSpec, ...]
    sha256: str = ""

    def step(self, step_id: str) -> StepSpec | None:
        for s in self.all_steps():
            if s.id == step_id:
                return s
        return None

    def all_steps(self) -> list[StepSpec]:
        out: list[StepSpec] = []
        for s in self.steps:
            out.append(s)
            out.extend(s.steps)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "description": self.description,
            "vars": [v.to_dict() for v in self.vars],
            "steps": [s.to_dict() for s in self.steps],
        }


# ----------------------------------------------------------------------------- loading


def _loader() -> type:
    """A SafeLoader that remembers the line of every mapping (for error messages)."""
    import yaml

    class LineLoader(yaml.SafeLoader):
        lines: dict[int, int]

    def construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        keys = [loader.construct_object(k, deep=True) for k, _ in node.value]
        if len(set(map(repr, keys))) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {dup!r}", node.start_mark
            )
        out = {
            k: loader.construct_object(v, deep=True)
            for k, (_, v) in zip(keys, node.value, strict=True)
        }
        loader.lines[id(out)] = node.start_mark.line + 1
        return out

    LineLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
        construct_mapping,
    )
    return LineLoader


def read_yaml(path: Path) -> tuple[Any, dict[int, int], str]:
    """The parsed document, the line of each mapping, and the file's SHA-256."""
    import yaml

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"playbook {path} not found", hint="see 'redisops playbook list' for the known ones"
        ) from None
    except OSError as exc:
        raise BadInput(f"cannot read playbook {path}: {exc.strerror}") from None
    loader_cls = _loader()
    loader = loader_cls(raw.decode("utf-8", errors="replace"))
    loader.lines = {}
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlaybookInvalid([f"{path}{where}: not valid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    return data, loader.lines, hashlib.sha256(raw).hexdigest()


def load(path: Path) -> Playbook:
    """Read and validate ``path``; raises :class:`PlaybookInvalid` listing every problem."""
    data, lines, sha = read_yaml(path)
    return _Validator(path, lines).playbook(data, sha)


# ----------------------------------------------------------------------------- validation


@dataclass
class _Head:
    """The fields every step has, read before its kind (action or group) is known."""

    raw: dict[str, Any]
    id: str
    name: str
    bad: int  # errors before this step: more after it means the step is invalid
    label: str = ""
    register: str | None = None
    on_failure: str = "abort"
    when: str | None = None
    precondition: str | None = None
    verify: str | None = None
    err: Callable[[str], None] = lambda text: None


class _Validator:
    def __init__(self, path: Path, lines: dict[int, int]) -> None:
        self.path = path
        self.lines = lines
        self.errors: list[str] = []
        self.var_names: set[str] = set()
        self.seen_names: set[str] = set()
        self.seen_registers: set[str] = set()

    def where(self, obj: Any = None) -> str:
        line = self.lines.get(id(obj)) if obj is not None else None
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, obj: Any, text: str) -> None:
        line = f"{self.where(obj)}: {text}"
        if line not in self.errors:
            self.errors.append(line)

    def playbook(self, data: Any, sha: str) -> Playbook:
        if not isinstance(data, dict):
            raise PlaybookInvalid(
                [f"{self.path}: a playbook is a mapping with name, description, vars and steps"]
            )
        for key in sorted(set(data) - TOP_KEYS, key=str):
            self.error(
                data, f"unknown top-level field {key!r} (known: {', '.join(sorted(TOP_KEYS))})"
            )
        name = data.get("name", self.path.stem)
        if not isinstance(name, str) or not name.strip():
            self.error(data, "name: must be text")
            name = self.path.stem
        description = data.get("description", "")
        if not isinstance(description, str):
            self.error(data, "description: must be text")
            description = ""
        variables = self.vars(data.get("vars") or {})
        steps_raw = data.get("steps")
        steps: tuple[StepSpec, ...] = ()
        if not isinstance(steps_raw, list) or not steps_raw:
            self.error(data, "steps: a playbook needs a non-empty list of steps")
        else:
            steps = self.steps(steps_raw, {v.name for v in variables})
        if self.errors:
            raise PlaybookInvalid(self.errors)

        return Playbook(
            self.path,
            name.strip(),
            description.strip(),
            variables,
            steps,
            sha,
        )

    # -- vars -------------------------------------------------------------------------
    def vars(self, raw: Any) -> tuple[VarSpec, ...]:
        if not isinstance(raw, dict):
            self.error(raw, "vars: must be a mapping of name -> type or {type, default, ...}")
            return ()
        out = []
        for name, spec in raw.items():
            where = f"vars.{name}"
            if not isinstance(name, str) or not IDENT.match(name):
                self.error(raw, f"{where}: a var name is lower case letters, digits and _")
                continue
            if name in RESERVED:
                self.error(raw, f"{where}: {name!r} is a reserved name")
                continue
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict):
                self.error(raw, f"{where}: must be a type name or a mapping")
                continue
            for key in sorted(set(spec) - VAR_KEYS, key=str):
                self.error(
                    spec, f"{where}: unknown field {key!r} (known: {', '.join(sorted(VAR_KEYS))})"
                )
            kind = spec.get("type", "str")
            if kind not in vartypes.TYPES or kind == "expr":
                known = ", ".join(t for t in vartypes.TYPES if t != "expr")
                self.error(spec, f"{where}.type: unknown type {kind!r} (known: {known})")
                continue
            has_default = "default" in spec
            default = spec.get("default")
            if has_default and default is not None:
                try:
                    default = vartypes.coerce(kind, default)
                except ValueError as exc:
                    self.error(
                        spec,
                        f"{where}.default: {default!r} is not {vartypes.describe(kind)} ({exc})",
                    )
            required = bool(spec.get("required", not has_default))
            choices = spec.get("choices")
            if choices is not None and not isinstance(choices, list):
                self.error(spec, f"{where}.choices: must be a list")
                choices = None
            description = spec.get("description", "")
            out.append(
                VarSpec(
                    name,
                    kind,
                    default,
                    required,
                    str(description),
                    tuple(choices) if choices is not None else None,
                )
            )
        return tuple(out)

    # -- steps ------------------------------------------------------------------------
    def steps(self, raw: list[Any], var_names: set[str]) -> tuple[StepSpec, ...]:
        self.var_names = set(var_names)
        defined = set(var_names) | BUILTIN_NAMES
        out: list[StepSpec] = []
        for i, item in enumerate(raw, 1):
            step = self.step(item, str(i), defined)
            if step is None:
                # its register still counts, so one bad step does not cascade into errors
                # on every later step that reads it
                if isinstance(item, dict) and isinstance(item.get("register"), str):
                    defined.add(item["register"])
                continue
            out.append(step)
            defined.update(s.register for s in (step, *step.steps) if s.register)
        return tuple(out)

    def step(
        self, raw: Any, step_id: str, defined: set[str], nested: bool = False
    ) -> StepSpec | None:
        if not isinstance(raw, dict):
            self.error(raw, f"step {step_id}: must be a mapping with name and action")
            return None
        head = self.head(raw, step_id, defined)
        if "for_each" in raw:
            return self.group(head, defined, nested)
        return self.action_step(head, defined)

    def head(self, raw: dict[str, Any], step_id: str, defined: set[str]) -> _Head:
        """What every step has: name, register, on_failure, when, precondition, verify."""
        name = raw.get("name")
        head = _Head(raw, step_id, str(name), len(self.errors))
        head.label = f"step {step_id} '{name}'" if isinstance(name, str) else f"step {step_id}"
        err = head.err = lambda text: self.error(raw, f"{head.label}: {text}")
        for key in sorted(set(raw) - STEP_KEYS, key=str):
            err(f"unknown field {key!r} (known: {', '.join(sorted(STEP_KEYS))})")
        if not isinstance(name, str) or not name.strip():
            err("name: every step needs a name (text)")
            head.name = f"step {step_id}"
        elif name in self.seen_names:
            err(f"name: another step is already called {name!r}")
        self.seen_names.add(head.name)
        register = raw.get("register")
        if register is not None:
            if not isinstance(register, str) or not IDENT.match(register):
                err("register: a name of lower case letters, digits and _")
                register = None
            elif register in RESERVED or register in self.var_names:
                err(f"register: {register!r} is a var or reserved name")
            elif register in self.seen_registers:
                err(f"register: {register!r} is registered by an earlier step")
            if isinstance(register, str):
                self.seen_registers.add(register)
        head.register = register
        on_failure = raw.get("on_failure", "abort")
        if on_failure not in ON_FAILURE:
            err(f"on_failure: {on_failure!r} is not abort or continue")
        head.on_failure = str(on_failure)
        head.when = self.expression(raw, "when", defined, err)
        head.precondition = self.expression(raw, "precondition", defined | PRECONDITION_NAMES, err)
        head.verify = self.expression(raw, "verify", defined | VERIFY_NAMES | {register or ""}, err)
        return head

    def action_step(self, head: _Head, defined: set[str]) -> StepSpec | None:
        from redisops.playbook.actions import ACTIONS

        raw, err = head.raw, head.err
        action = raw.get("action")
        args = raw.get("with") or {}
        if "steps" in raw or "as" in raw:
            err("steps/as: only a for_each group has them")
        if not isinstance(action, str) or action not in ACTIONS:
            err(f"action: unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})")
            action = None
        if not isinstance(args, dict):
            err("with: must be a mapping of argument -> value")
            args = {}
        if action is not None:
            self.arguments(ACTIONS[action], args, defined, err)
            checks = head.precondition is not None or head.verify is not None
            if checks and not ACTIONS[action].changes(args):
                err(
                    f"precondition/verify: only mutating steps have them ({action} reads only here)"
                )
        if len(self.errors) > head.bad:
            return None
        return StepSpec(
            head.id,
            head.name,
            action,
            args,
            head.when,
            head.register,
            head.on_failure,
            head.precondition,
            head.verify,
            line=self.lines.get(id(raw)),
        )

    def group(self, head: _Head, defined: set[str], nested: bool) -> StepSpec | None:
        raw, err = head.raw, head.err
        if nested:
            err("for_each: groups do not nest (keep the procedure flat)")
            return None
        if "action" in raw or "with" in raw:
            err("action/with: a for_each group has steps, not an action")
        if head.register is not None:
            err("register: a group registers nothing (its steps can)")
        loop = raw["for_each"]
        if isinstance(loop, str) and expr.TEMPLATE.fullmatch(loop.strip()) is not None:
            self.template_refs(loop, defined, "for_each", err)
        elif not isinstance(loop, list):
            err('for_each: a list, or one template such as "{{ before.replicas }}"')
        as_name = raw.get("as", "item")
        if not isinstance(as_name, str) or not IDENT.match(as_name) or as_name in RESERVED:
            err("as: the loop variable's name (lower case letters, digits and _)")
            as_name = "item"
        subs_raw = raw.get("steps")
        subs: list[StepSpec] = []
        if not isinstance(subs_raw, list) or not subs_raw:
            err("steps: a for_each group needs a non-empty list of steps")
        else:
            inner = set(defined) | {as_name}
            for j, item in enumerate(subs_raw, 1):
                sub = self.step(item, f"{head.id}.{j}", inner, nested=True)
                if sub is not None:
                    subs.append(sub)
                    if sub.register:
                        inner.add(sub.register)
        if len(self.errors) > head.bad:
            return None
        return StepSpec(
            head.id,
            head.name,
            None,
            {},
            head.when,
            None,
            head.on_failure,
            for_each=loop,
            as_name=as_name,
            steps=tuple(subs),
            line=self.lines.get(id(raw)),
        )

    def expression(self, raw: dict[str, Any], key: str, defined: set[str], err: Any) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return "True" if value else "False"
        if not isinstance(value, str):
            err(f"{key}: must be an expression (text)")
            return None
        try:
            used = expr.names(value)
        except expr.ExprError as exc:
            err(f"{key}: {exc.message}")
            return None
        self.check_names(used, defined, key, err)
        return value

    def check_names(self, used: set[str], defined: set[str], key: str, err: Any) -> None:
        for name in sorted(used - defined - {"true", "false", "null"}):
            err(
                f"{key}: {name!r} is not defined here (not a var, nor registered by an earlier step)"
            )

    def template_refs(self, value: Any, defined: set[str], key: str, err: Any) -> None:
        try:
            expr.check_template(value)
            used = expr.template_names(value)
        except expr.ExprError as exc:
            err(f"{key}: {exc.message}")
            return
        self.check_names(used, defined, key, err)

    def arguments(self, action: Any, args: dict[str, Any], defined: set[str], err: Any) -> None:
        params = action.params
        for key in sorted(set(args) - set(params), key=str):
            known = ", ".join(sorted(params)) or "none"
            err(f"with.{key}: {action.name} takes no argument {key!r} (it takes: {known})")
        for key, param in params.items():
            if key not in args:
                if param.required:
                    err(f"with.{key}: {action.name} needs {key} ({vartypes.describe(param.type)})")
                continue
            value = args[key]
            field_name = f"with.{key}"
            if param.type == "expr":
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if not isinstance(item, str):
                        err(f"{field_name}: must be an expression (text)")
                        continue
                    try:
                        used = expr.names(item)
                    except expr.ExprError as exc:
                        err(f"{field_name}: {exc.message}")
                        continue
                    self.check_names(used, defined, field_name, err)
                continue
            self.template_refs(value, defined, field_name, err)
            if not expr.template_names(value) and "{{" not in str(value):
                try:
                    vartypes.coerce(param.type, value)
                except ValueError as exc:
                    err(f"{field_name}: {value!r} is not {vartypes.describe(param.type)} ({exc})")
                if param.choices and value not in param.choices:
                    err(
                        f"{field_name}: {value!r} is not one of {', '.join(map(str, param.choices))}"
                    )


# ----------------------------------------------------------------------------- vars


def bind_vars(book: Playbook, given: Mapping[str, Any]) -> dict[str, Any]:
    """The playbook's vars from ``--var`` values and defaults, typed; BadInput when one is
    missing, unknown or malformed (nothing has run yet: exit 2)."""
    known = {v.name: v for v in book.vars}
    for name in given:
        if name not in known:
            raise BadInput(
                f"{book.path}: no var {name!r} in this playbook",
                hint=f"it takes: {', '.join(known) or 'no vars'}",
            )
    out: dict[str, Any] = {}
    missing = []
    for spec in book.vars:
        if spec.name in given:
            try:
                value = vartypes.coerce(spec.type, given[spec.name])
            except ValueError as exc:
                raise BadInput(
                    f"{book.path}: --var {spec.name}={given[spec.name]!r} is not "
                    f"{vartypes.describe(spec.type)} ({exc})"
                ) from None
        elif spec.required and spec.default is None:
            missing.append(spec)
            continue
        else:
            value = spec.default
        if spec.choices is not None and value not in spec.choices:
            raise BadInput(
                f"{book.path}: var {spec.name}={value!r} is not one of "
                + ", ".join(map(str, spec.choices))
            )
        out[spec.name] = value
    if missing:
        raise BadInput(
            f"{book.path}: missing var(s) "
            + ", ".join(f"{v.name} ({vartypes.describe(v.type)})" for v in missing),
            hint="pass them as " + " ".join(f"--var {v.name}=..." for v in missing),
        )
    return out

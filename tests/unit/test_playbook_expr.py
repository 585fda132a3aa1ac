"""The playbook expression language: what it evaluates, and what it refuses."""

from __future__ import annotations

import pytest

from redisops.playbook import expr, vartypes

SCOPE = {
    "st": {
        "master": "10.0.0.1:6379",
        "replicas": ["10.0.0.2:6379", "10.0.0.3:6379"],
        "nodes": {
            "10.0.0.1:6379": {"role": "master", "offset": 100, "link": None},
            "10.0.0.2:6379": {"role": "replica", "offset": 100, "link": "up"},
            "10.0.0.3:6379": {"role": "replica", "offset": 90, "link": "down"},
        },
        "chosen": None,
    },
    "target": "10.0.0.2:6379",
    "limit": 5,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("st.master == '10.0.0.1:6379'", True),
        ("target in st.replicas and st.nodes[target].link == 'up'", True),
        ("len(st.replicas)", 2),
        ("st.nodes[st.master].offset - st.nodes['10.0.0.3:6379'].offset", 10),
        ("[n.offset for n in values(st.nodes) if n.role == 'replica']", [100, 90]),
        ("all(n.link == 'up' for n in values(st.nodes) if n.role == 'replica')", False),
        ("any(n.link == 'down' for n in values(st.nodes))", True),
        ("st.chosen == null", True),
        ("st.chosen is None", True),
        ("'yes' if limit > 3 else 'no'", "yes"),
        ("st.replicas[0:1]", ["10.0.0.2:6379"]),
        ("get(st.nodes, 'nope', 'missing')", "missing"),
        ("sorted(keys(st.nodes))[0]", "10.0.0.1:6379"),
        ("not st.chosen and limit >= 5", True),
        ("1 < limit <= 5", True),
    ],
)
def test_expressions_evaluate_over_registered_values(text: str, expected: object) -> None:
    assert expr.evaluate(text, SCOPE) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("__import__('os').system('id')", "unknown function"),
        ("st.__class__", "not allowed"),
        ("().__class__.__bases__", "not allowed"),
        ("(lambda: 1)", "not allowed"),
        ("2 ** 1000000", "not allowed"),
        ("'x' * 1000000000", "multiplies numbers only"),
        ("[x := 1]", "not allowed"),
        ("open('/etc/passwd')", "unknown function"),
        ("st.master.upper()", "unknown function"),
        ("len(x=1)", "keyword arguments"),
        ("st.missing", "has no field 'missing'"),
        ("nobody", "unknown name 'nobody'"),
        ("st.replicas[5]", "out of range"),
        ("st.chosen.address", "is null"),
        ("a b", "cannot parse"),
    ],
)
def test_expressions_outside_the_language_are_refused_with_the_reason(
    text: str, complaint: str
) -> None:
    with pytest.raises(expr.ExprError) as err:
        expr.evaluate(text, SCOPE)
    assert complaint in str(err.value)


def test_names_are_the_free_names_of_an_expression() -> None:
    assert expr.names("all(n.ok for n in values(after.nodes)) and target in before.replicas") == {
        "after",
        "target",
        "before",
    }


def test_a_template_that_is_the_whole_value_keeps_its_type() -> None:
    assert expr.render("{{ st.replicas }}", SCOPE) == ["10.0.0.2:6379", "10.0.0.3:6379"]
    assert expr.render({"to": "{{ target }}", "n": "{{ limit + 1 }}"}, SCOPE) == {
        "to": "10.0.0.2:6379",
        "n": 6,
    }


def test_a_template_inside_text_turns_values_into_text() -> None:
    assert (
        expr.render("{{ target }} lags {{ 100 - 90 }} bytes", SCOPE)
        == "10.0.0.2:6379 lags 10 bytes"
    )
    assert expr.render("replicas: {{ st.replicas }}", SCOPE) == (
        'replicas: ["10.0.0.2:6379", "10.0.0.3:6379"]'
    )


def test_unbalanced_template_braces_are_found_before_running() -> None:
    with pytest.raises(expr.ExprError, match="unbalanced"):
        expr.check_template("{{ target }")


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("address", "10.0.0.1", "10.0.0.1:6379"),
        ("address", "rediss://ops@cache:6390", "cache:6390"),
        ("duration", "2m", 120.0),
        ("duration", "1h30m", 5400.0),
        ("size", "1mb", 1048576),
        ("size", 42, 42),
        ("bool", "off", False),
        ("int", 3.0, 3),
    ],
)
def test_var_types_turn_what_was_written_into_values(
    kind: str, value: object, expected: object
) -> None:
    assert vartypes.coerce(kind, value) == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("address", "10.0.0.1:99999"),
        ("address", "redis://u:pw@h:1"),
        ("duration", "soon"),
        ("duration", "5 parsecs"),
        ("int", "1.5"),
        ("int", True),
        ("bool", "maybe"),
        ("size", "lots"),
    ],
)
def test_malformed_values_are_refused(kind: str, value: object) -> None:
    with pytest.raises(ValueError):
        vartypes.coerce(kind, value)

"""Reply templates: what parses, what is refused and why, and rendering that never re-reads its values."""

from __future__ import annotations

import pytest

from mcp_desk.domain.macro import MAX_TEMPLATE_CHARS, Macro, Placeholder, ReplyTemplate, merge_tags


def test_a_template_is_literal_text_and_placeholders_in_order() -> None:
    template = ReplyTemplate.parse("Hello {requester}, ticket {id} is {status}.")
    assert template.parts == (
        "Hello ",
        Placeholder("requester"),
        ", ticket ",
        Placeholder("id"),
        " is ",
        Placeholder("status"),
        ".",
    )
    assert template.fields == ("requester", "id", "status")


def test_doubled_braces_are_literal_braces() -> None:
    template = ReplyTemplate.parse("{{id}} is {id}; }} and {{ stay")
    assert template.fields == ("id",)
    assert template.render({"id": "T-1"}) == "{id} is T-1; } and { stay"


def test_rendering_substitutes_once_and_never_expands_a_value() -> None:
    """A title written by a requester that looks like a placeholder stays literal text."""
    template = ReplyTemplate.parse("Re: {title} ({id})")
    assert template.render({"title": "{id} {requester.__class__} {{", "id": "T-9"}) == (
        "Re: {id} {requester.__class__} {{ (T-9)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hi {name}", r"unknown field \{name\} at character 4 \(fields: \{id\}, \{title\}"),
        ("{title.upper}", r"placeholder \{title.upper\} at character 1 is not a plain field name"),
        ("{title[0]}", r"not a plain field name"),
        ("{title!r}", r"not a plain field name"),
        ("{title:>99999}", r"not a plain field name"),
        ("{}", r"not a plain field name"),
        ("{0}", r"not a plain field name"),
        ("Hi {id", r"unmatched '\{' at character 4; write \{\{ for a literal"),
        ("a } b", r"unmatched '\}' at character 3; write \}\} for a literal"),
        ("   \n", r"the reply is empty"),
        ("x" * (MAX_TEMPLATE_CHARS + 1), rf"the reply is {MAX_TEMPLATE_CHARS + 1} characters; the most is"),
        ("{id}" * 21, r"the reply has 21 placeholders; the most is 20"),
    ],
)
def test_bad_templates_are_refused_naming_the_problem_and_where(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReplyTemplate.parse(text)


def test_changes_describe_every_field_a_macro_sets() -> None:
    macro = Macro(
        name="m",
        description="d",
        reply=ReplyTemplate.parse("done"),
        visibility="public",
        status="resolved",
        priority="high",
        add_tags=("vpn", "escalated"),
        assignee="",
    )
    assert macro.changes() == [
        "status → resolved",
        "priority → high",
        "adds tags vpn, escalated",
        "unassigns",
        "posts a public reply",
    ]
    assert Macro(name="m", description="d", assignee="bob").changes() == ["assigns to bob"]
    internal = Macro(name="m", description="d", reply=ReplyTemplate.parse("note"))
    assert internal.changes() == ["posts an internal reply"]


def test_merged_tags_keep_the_tickets_order_and_add_only_new_ones() -> None:
    assert merge_tags(["printer", "floor-3"], ["vpn", "printer", "vpn"]) == ["printer", "floor-3", "vpn"]
    assert merge_tags([], []) == []

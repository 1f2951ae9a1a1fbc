"""Change records: plan and apply actions map onto each other, and the renderers show them."""

from __future__ import annotations

import pytest

from aksmetrics.changes import (
    Change,
    FieldDiff,
    outcome,
    planned_writes,
    render_markdown,
    render_table,
    summary,
    table_rows,
    writes,
)

SCOPE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/privateLinkScopes/ampls"


def change(action: str, **extra: object) -> Change:
    return Change(
        action=action, plane="azure", kind="private link scope", resource_id=SCOPE, **extra
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verb", "applied", "planned"),
    [
        ("create", "created", "would create"),
        ("update", "updated", "would update"),
        ("delete", "deleted", "would delete"),
        ("restart", "restarted", "would restart"),
        ("adopt", "adopted", "would adopt"),
    ],
)
def test_outcome_names_the_applied_and_the_planned_action(
    verb: str, applied: str, planned: str
) -> None:
    assert outcome(verb, plan=False) == applied  # type: ignore[arg-type]
    assert outcome(verb, plan=True) == planned  # type: ignore[arg-type]
    assert change(planned).applied().action == applied
    assert change(applied).planned().action == planned


def test_only_real_writes_count_as_writes() -> None:
    changes = [
        change(action)
        for action in ("unchanged", "created", "would update", "refused", "adopted", "restarted")
    ]

    assert [item.action for item in writes(changes)] == ["created", "restarted"]
    assert [item.action for item in planned_writes(changes)] == ["would update"]


def test_summary_counts_by_action_in_a_stable_order() -> None:
    changes = [change("unchanged"), change("created"), change("unchanged")]

    assert summary(changes) == "1 created, 2 unchanged"
    assert summary([]) == "no changes"


def test_terminal_table_lists_each_change_with_its_fields_shortened() -> None:
    long_value = "x" * 500
    changes = [
        change(
            "would update",
            fields=(FieldDiff(path="properties.a", actual="Open", desired=long_value),),
        ),
        change("unchanged"),
    ]

    text = render_table(changes)

    assert text.splitlines()[0].split() == ["ACTION", "KIND", "RESOURCE"]
    assert "would update" in text and SCOPE in text
    assert "properties.a: Open -> xxx" in text and long_value not in text
    assert text.splitlines()[-1] == "1 would update, 1 unchanged"


def test_artifact_rows_and_markdown_carry_every_change() -> None:
    changes = [change("created", note="links a|b"), change("unchanged")]

    rows = table_rows(changes)
    markdown = render_markdown(changes, title="Plan of x")

    assert [row["action"] for row in rows] == ["created", "unchanged"]
    assert markdown.startswith("# Plan of x\n")
    assert "links a\\|b" in markdown, "a pipe in a cell must not break the table"
    assert markdown.count(SCOPE) == 2


def test_a_change_log_line_names_action_kind_id_and_fields() -> None:
    line = change(
        "updated", fields=(FieldDiff(path="p", actual=1, desired=2),), note="adopted"
    ).line()

    assert line == f"updated: private link scope {SCOPE} (p) — adopted"

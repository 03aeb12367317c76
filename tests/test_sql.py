"""Every named query prepares against the migrated schema; the loader's named parameters;
migrations are idempotent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.db import QUERIES, SQL, Pool, Query, bind, load_queries, migrate


@pytest.mark.parametrize("name", sorted(SQL))
async def test_query_prepares(pool: Pool, name: str) -> None:
    async with pool.acquire() as conn:
        statement = await conn.prepare(SQL[name])
        assert statement.get_statusmsg() is not None or statement.get_parameters() is not None
        if QUERIES[name].names:  # every name became exactly one of the statement's parameters
            assert len(statement.get_parameters()) == len(QUERIES[name].names)


def _load(tmp_path: Path, text: str) -> dict[str, Query]:
    (tmp_path / "things.sql").write_text(text)
    return load_queries(tmp_path)


def test_named_parameters_become_numbers_in_order_of_first_use(tmp_path: Path) -> None:
    queries = _load(
        tmp_path,
        "-- name: move\n"
        "update things set start_at = :start_at, end_at = :end_at\n"
        "where id = :thing_id and start_at <> :start_at;\n",
    )
    assert queries["move"] == Query(
        "update things set start_at = $1, end_at = $2\nwhere id = $3 and start_at <> $1;",
        ("start_at", "end_at", "thing_id"),
    )


def test_casts_literals_and_comments_are_not_parameters(tmp_path: Path) -> None:
    queries = _load(
        tmp_path,
        "-- name: odd\n"
        "-- :not_a_parameter, nor $7\n"
        "select :day::date, now()::time, '10:30 :quoted', \"col:x\", a[1:2], :n::int[] /* :no */\n"
        "from things where x = $$ :dollar $$;\n",
    )
    assert queries["odd"] == Query(
        "-- :not_a_parameter, nor $7\n"
        "select $1::date, now()::time, '10:30 :quoted', \"col:x\", a[1:2], $2::int[] /* :no */\n"
        "from things where x = $$ :dollar $$;",
        ("day", "n"),
    )


def test_positional_queries_load_unchanged(tmp_path: Path) -> None:
    text = "select * from things where id = $1 and kind = $2::text;"
    assert _load(tmp_path, f"-- name: get\n{text}\n")["get"] == Query(text, ())


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("select 1;\n-- name: later\nselect 2;\n", "SQL before the first `-- name:` line"),
        ("-- name: both\nselect :a, $2;\n", "mixes :name and $n"),
        ("-- name: gap\nselect $1, $3;\n", "has no $2"),
        ("-- name: twice\nselect 1;\n-- name: twice\nselect 2;\n", "duplicate query name"),
    ],
)
def test_malformed_files_fail_at_load(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        _load(tmp_path, text)


def test_bind_takes_arguments_by_name_whatever_the_mapping_order() -> None:
    text, *args = bind("get_booking", {"is_test": True, "organization_id": None, "booking_id": 7})
    assert text == SQL["get_booking"]
    assert QUERIES["get_booking"].names == ("booking_id", "organization_id", "is_test")
    assert args == [7, None, True]
    assert bind("lock_booking", {"booking_id": 7}) == (SQL["lock_booking"], 7)


def test_bind_refuses_a_missing_or_a_stray_name() -> None:
    with pytest.raises(TypeError, match="needs :is_test"):
        bind("get_booking", {"booking_id": 7, "organization_id": None})
    with pytest.raises(TypeError, match="has no parameter :is_tset"):
        bind("get_booking", {"booking_id": 7, "organization_id": None, "is_test": 1, "is_tset": 1})
    with pytest.raises(TypeError, match="has no named parameters"):
        bind("set_organization_limits", {})


async def test_migrate_twice_is_a_no_op(pool: Pool) -> None:
    async with pool.acquire() as conn:
        assert await migrate(conn) == []
        tables = await conn.fetchval("select count(*) from schema_migrations")
        assert tables >= 1

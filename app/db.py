"""PostgreSQL: pool creation with codecs, forward-only migrations, named SQL queries."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import asyncpg
import msgspec

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"
# Any constant shared by every process that migrates; pg_advisory_lock serialises them.
_MIGRATION_LOCK = 0x61737472  # "astr"

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
# What a query's text is made of, as far as its parameters go: literals, quoted names and
# comments are skipped whole (a `:x` or `$1` inside them is text), `::` is a cast, then
# `:name` (named) or `$n` (positional) parameters.
_TOKEN = re.compile(
    r"""
      '(?:[^']|'')*'
    | "(?:[^"]|"")*"
    | --[^\n]*
    | /\*.*?\*/
    | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$
    | ::
    | (?<![\w:]):(?P<name>[A-Za-z_]\w*)
    | \$(?P<number>\d+)
    """,
    re.VERBOSE | re.DOTALL,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What domain code runs queries on: a connection, or one borrowed from the pool.
    Connection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool


class Query(NamedTuple):
    """A named block of sql/queries: the text PostgreSQL prepares, and its parameters' names."""

    text: str  # `:name` parameters rewritten to $1, $2, ... in order of first use
    names: tuple[str, ...]  # names[0] is $1; () for a query written with $n itself


def load_queries(directory: Path = QUERIES_DIR, pattern: str = "*.sql") -> dict[str, Query]:
    """Every `-- name: x` block of sql/queries/*.sql, by name (names are unique across files)."""
    queries: dict[str, Query] = {}
    for path in sorted(directory.glob(pattern)):
        head, *parts = _NAME.split(path.read_text())
        if _TOKEN.sub(_drop_comments, head).strip():
            raise ValueError(f"{path.name}: SQL before the first `-- name:` line")
        for name, body in zip(parts[::2], parts[1::2], strict=True):
            if name in queries:
                raise ValueError(f"duplicate query name {name!r} in {path.name}")
            queries[name] = _parse(name, body.strip())
    return queries


def _drop_comments(match: re.Match[str]) -> str:
    return "" if match[0].startswith(("--", "/*")) else match[0]


def _parse(name: str, body: str) -> Query:
    """Rewrite `:name` parameters to `$n` (one number per name, however often it is used),
    as aiosql does for asyncpg, so that the statement binds from a mapping by name."""
    names: dict[str, str] = {}
    numbers: set[int] = set()

    def rewrite(match: re.Match[str]) -> str:
        if match["name"]:
            return names.setdefault(match["name"], f"${len(names) + 1}")
        if match["number"]:
            numbers.add(int(match["number"]))
        return match[0]

    text = _TOKEN.sub(rewrite, body)
    if names and numbers:
        raise ValueError(f"query {name!r} mixes :name and $n parameters")
    if numbers != set(range(1, len(numbers) + 1)):
        missing = sorted(set(range(1, max(numbers))) - numbers)
        raise ValueError(f"query {name!r} has no ${missing[0]}")
    return Query(text, tuple(names))


QUERIES = load_queries()
# The text of every query, for call sites that pass positional $n arguments.
SQL = {name: query.text for name, query in QUERIES.items()}


def _taker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The mapping's values for `names` as one tuple, in order (itemgetter: done in C)."""
    if len(names) == 1:
        (only,) = names
        return lambda params: (params[only],)
    return itemgetter(*names)


_TAKE = {name: _taker(query.names) for name, query in QUERIES.items() if query.names}


def bind(name: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """The named query's text and its arguments taken from `params` by name, for
    `await conn.fetchrow(*bind("get_booking", {"booking_id": ...}))`. `params` has exactly the
    query's names: a missing or a stray one raises instead of binding the wrong column."""
    take = _TAKE.get(name)
    if take is None:
        raise TypeError(f"query {name!r} has no named parameters")
    try:
        values = take(params)
    except KeyError as exc:
        raise TypeError(f"query {name!r} needs :{exc.args[0]}") from None
    if len(params) != len(values):
        stray = sorted(set(params) - set(QUERIES[name].names))
        raise TypeError(f"query {name!r} has no parameter :{stray[0]}")
    return (SQL[name], *values)


async def _init_connection(conn: Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def _keep_session(conn: Connection) -> None:
    """Released connections skip asyncpg's reset query (a round trip per request): Astrocal
    leaves no session state behind. asyncpg still rolls back an open transaction first."""


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def create_pool(dsn: str, *, max_size: int = 20) -> Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
    )
    assert pool is not None  # noqa: S101 - create_pool only returns None when awaited lazily
    return pool


async def migrate(conn: Connection) -> list[str]:
    """Apply pending sql/migrations/*.sql in order, under an advisory lock; returns what ran."""
    applied: list[str] = []
    await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "create table if not exists schema_migrations ("
            " version text primary key, applied_at timestamptz not null default now())"
        )
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.stem in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("insert into schema_migrations (version) values ($1)", path.stem)
            applied.append(path.stem)
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied

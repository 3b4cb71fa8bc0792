"""Durable storage of what the server accepts: events and added items (SQLAlchemy).

Every write is one committed transaction before the request is acknowledged, so an answer of 200/201
means the data is on disk. SQLite (``sqlite:///path``) is the embedded default, opened in WAL mode
with ``synchronous=FULL`` (a commit survives a killed process and a power cut); PostgreSQL is used by
URL (``postgresql://user@host:port/db``, through psycopg 3), for a store on another machine. A server
reads the store only when it starts (it replays the tables — items, profiles, events — in insertion
order): servers sharing one store do not see each other's writes until they restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from clarec.errors import ClarecError

T = TypeVar("T")

metadata = sa.MetaData()

events_table = sa.Table(
    "clarec_events",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("user_id", sa.String(255), nullable=False, index=True),
    sa.Column("item_id", sa.String(255), nullable=False),
    sa.Column("behavior", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.BigInteger(), nullable=False),
    sa.Column("received_at", sa.Float(), nullable=False),
)

items_table = sa.Table(
    "clarec_items",
    metadata,
    sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("item_id", sa.String(255), nullable=False, unique=True),
    sa.Column("fields", sa.Text(), nullable=False),  # JSON object of the item's text fields
    sa.Column("received_at", sa.Float(), nullable=False),
)


profiles_table = sa.Table(
    "clarec_profiles",
    metadata,
    sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("user_id", sa.String(255), nullable=False, index=True),
    sa.Column("fields", sa.Text(), nullable=False),  # JSON object of the profile's fields
    sa.Column("received_at", sa.Float(), nullable=False),
)


@dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    behavior: str
    timestamp: int


def normalise_url(url: str) -> str:
    """``sqlite:///path`` as is; ``postgres://`` / ``postgresql://`` go through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def default_url(run_dir: str | Path) -> str:
    """The embedded default: ``RUN_DIR/serve/events.db``."""
    path = Path(run_dir) / "serve" / "events.db"
    return f"sqlite:///{path}"


class EventStore:
    """Append-only events and added items, committed before the caller acknowledges them."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        if not self.url.startswith(("sqlite:", "postgresql+psycopg://")):
            raise ClarecError(
                f"cannot open the event store {url!r}: the store is SQLite (sqlite:///PATH) or "
                "PostgreSQL (postgresql://user@host:port/db)"
            )
        kwargs: dict[str, Any] = {}
        try:
            if self.url.startswith("sqlite"):
                path = self.url.split("///", 1)[1] if "///" in self.url else ""
                if path and path != ":memory:" and not path.startswith("file:"):  # a URI names its own
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
                if path in ("", ":memory:"):  # in memory: one connection for every thread (each new
                    kwargs["poolclass"] = sa.pool.StaticPool  # one would be another, empty database)
            self.engine = sa.create_engine(self.url, **kwargs)
        except (
            sa.exc.ArgumentError,
            ImportError,
            OSError,
            ValueError,
        ) as e:  # a file for a folder, a bad port
            raise ClarecError(f"cannot open the event store {url!r}: {e}") from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as e:
            raise ClarecError(f"cannot open the event store {url!r}: {e.__class__.__name__}: {e}") from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def journal_mode(self) -> str | None:
        """SQLite's journal mode (``wal``), ``None`` for other databases."""
        if self.dialect != "sqlite":
            return None
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())

    # ------------------------------------------------------------------ writes
    def add_events(self, events: Iterable[Event]) -> int:
        """Write events in one transaction; returns how many. Committed when this returns."""
        now = time.time()
        rows = [
            {
                "user_id": e.user_id,
                "item_id": e.item_id,
                "behavior": e.behavior,
                "timestamp": int(e.timestamp),
                "received_at": now,
            }
            for e in events
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(events_table.insert(), rows)
        return len(rows)

    def add_item(
        self, item_id: str, fields: Mapping[str, Any], then: Callable[[], T] | None = None
    ) -> T | None:
        """Write one added item (its text fields as JSON). Committed when this returns. ``then`` runs
        once the row is written and before the commit, its result returned: when it raises, nothing
        is stored (the server adds the item to the model there, so that an item is in both or in
        neither)."""
        with self.engine.begin() as conn:
            conn.execute(
                items_table.insert(),
                {"item_id": item_id, "fields": json.dumps(dict(fields)), "received_at": time.time()},
            )
            return then() if then is not None else None

    def set_profile(self, user_id: str, fields: Mapping[str, Any]) -> None:
        """Write a user's profile (the latest one written wins on replay). Committed when this returns."""
        with self.engine.begin() as conn:
            conn.execute(
                profiles_table.insert(),
                {"user_id": user_id, "fields": json.dumps(dict(fields)), "received_at": time.time()},
            )

    # ------------------------------------------------------------------ replay
    def events(self) -> list[Event]:
        """Every stored event in the order it was accepted."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    events_table.c.user_id,
                    events_table.c.item_id,
                    events_table.c.behavior,
                    events_table.c.timestamp,
                ).order_by(events_table.c.id)
            ).all()
        return [Event(r[0], r[1], r[2], int(r[3])) for r in rows]

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """Every added item ``(item_id, fields)`` in the order it was added."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(items_table.c.item_id, items_table.c.fields).order_by(items_table.c.seq)
            ).all()
        return [(r[0], json.loads(r[1])) for r in rows]

    def profiles(self) -> dict[str, dict[str, Any]]:
        """The latest profile of every user who has one."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(profiles_table.c.user_id, profiles_table.c.fields).order_by(profiles_table.c.seq)
            ).all()
        return {r[0]: json.loads(r[1]) for r in rows}

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar() or 0)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cur.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it returns
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()

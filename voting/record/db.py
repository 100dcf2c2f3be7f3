"""Postgres access: the async engine and alembic migrations.

Only the admin API, the persister and the CLI use Postgres; the ballot hot path never does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An asyncpg-backed SQLAlchemy engine for ``url`` (``postgresql+asyncpg://...``);
    ``pool_size`` connections kept open (5 more on demand)."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        hide_parameters=True,  # errors and logs never carry the values of a statement
    )


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the package's migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = url
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (blocking; call outside an event loop)."""
    command.upgrade(alembic_config(url), revision)


async def migrate_async(url: str, revision: str = "head") -> None:
    """:func:`migrate` from inside an event loop (runs it in a worker thread)."""
    await asyncio.to_thread(migrate, url, revision)

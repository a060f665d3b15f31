"""The database layer: what one pooled query costs."""

import pytest
from asyncpg.connection import Connection

from ordergraph.db import fetch
from ordergraph.models import Warehouse


@pytest.mark.postgres_only
async def test_a_pooled_query_is_one_statement_with_no_reset_on_release(db, monkeypatch):
    sent: list[str] = []
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(Connection, name)

        async def logged(self, query, *args, _original=original, **kwargs):
            sent.append(query)
            return await _original(self, query, *args, **kwargs)

        monkeypatch.setattr(Connection, name, logged)
    await Warehouse.filter(code="NOPE").first()
    await fetch("SELECT 1 AS one")
    assert len(sent) == 2, sent
    assert not any("RESET" in q.upper() or "advisory" in q for q in sent)
    # The session is what a fresh connection has: nothing was ever SET on it.
    rows = await fetch("SELECT count(*) AS n FROM pg_settings WHERE source = 'session'")
    assert rows[0]["n"] == 0

"""Team accounts: creation, bearer tokens (only their sha256 is stored) and per-team daily limits."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from nerfseg.leaderboard.store.base import StoreBase
from nerfseg.leaderboard.store.records import StoreError, Team, hash_token
from nerfseg.leaderboard.store.schema import teams_t


class TeamAccounts(StoreBase):
    """The team part of :class:`~nerfseg.leaderboard.store.ResultsStore`."""

    def add_team(self, name: str, daily_limit: int | None = None) -> tuple[Team, str]:
        """Create a team; returns it and its token. The token is shown once: only its hash is stored."""
        name = name.strip()
        if not name:
            raise StoreError("a team needs a name")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._tx() as conn:
            if conn.execute(sa.select(teams_t.c.id).where(teams_t.c.name == name)).first() is not None:
                raise StoreError(f"team {name!r} exists already (use --rotate to issue a new token)")
            tid = conn.execute(
                sa.insert(teams_t)
                .values(name=name, token_hash=hash_token(token), daily_limit=daily_limit, created_at=now)
                .returning(teams_t.c.id)
            ).scalar_one()
        return Team(int(tid), name, daily_limit, now), token

    def rotate_token(self, name: str) -> str:
        """Issue a new token for a team (the old one stops working)."""
        token = secrets.token_urlsafe(32)
        with self._tx() as conn:
            res = conn.execute(sa.update(teams_t).where(teams_t.c.name == name).values(token_hash=hash_token(token)))
            if res.rowcount != 1:
                raise StoreError(f"no team named {name!r}")
        return token

    def set_daily_limit(self, name: str, daily_limit: int | None) -> None:
        with self._tx() as conn:
            res = conn.execute(sa.update(teams_t).where(teams_t.c.name == name).values(daily_limit=daily_limit))
            if res.rowcount != 1:
                raise StoreError(f"no team named {name!r}")

    def team_by_token(self, token: str | None) -> Team | None:
        if not token:
            return None
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(teams_t).where(teams_t.c.token_hash == hash_token(token))).mappings().first()
        return None if row is None else self._team(row)

    def team_by_name(self, name: str) -> Team | None:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(teams_t).where(teams_t.c.name == name)).mappings().first()
        return None if row is None else self._team(row)

    def ensure_team(self, name: str) -> Team:
        """The team of local ``nerfseg submit`` runs: created on first use with a token nobody knows."""
        team = self.team_by_name(name)
        if team is not None:
            return team
        try:
            return self.add_team(name)[0]
        except StoreError:  # created meanwhile by another process
            team = self.team_by_name(name)
            if team is None:
                raise
            return team

    def list_teams(self) -> list[Team]:
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(teams_t).order_by(teams_t.c.id)).mappings().all()
        return [self._team(r) for r in rows]

    @staticmethod
    def _team(row: Any) -> Team:
        return Team(int(row["id"]), row["name"], row["daily_limit"], float(row["created_at"]))


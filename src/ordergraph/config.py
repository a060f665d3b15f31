"""Settings from the environment, with embedded defaults (SQLite, in-process bus)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", env_file=".env", extra="ignore")

    database_url: str = Field(default="sqlite://var/ordergraph.sqlite3")
    # Unset: the in-process event bus (embedded default). Set: Redis streams.
    redis_url: str | None = None
    db_pool_size: int = 20

    environment: str = "development"  # "production" turns introspection and GraphiQL off
    introspection: bool | None = None
    graphiql: bool | None = None

    jwt_secret: str = "dev-only-change-me-0123456789abcdef"
    jwt_audience: str = "ordergraph-customer"
    jwt_issuer: str = "ordergraph"

    # Query limits
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 4000
    max_page_size: int = 100

    # Live subscriptions
    max_ws_connections_per_viewer: int = 20
    max_subscriptions_per_connection: int = 50
    ws_init_timeout_seconds: float = 5.0

    reservation_ttl_seconds: int = 15 * 60
    # Periodic jobs (reservation expiry) in this process; off for dedicated API-only processes.
    run_jobs: bool = True
    idempotency_wait_seconds: float = 10.0
    log_level: str = "INFO"
    log_json: bool = True

    @property
    def production(self) -> bool:
        return self.environment.lower() == "production"

    @property
    def introspection_enabled(self) -> bool:
        return (not self.production) if self.introspection is None else self.introspection

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.production) if self.graphiql is None else self.graphiql

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()

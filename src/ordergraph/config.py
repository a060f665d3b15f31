"""Settings from the environment, with embedded defaults (SQLite, in-process bus)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Development-only webhook secrets of the built-in carriers; set CARRIER_WEBHOOK_SECRETS in
# production (a JSON object: carrier code → secret, or → a list of secrets during a rotation).
DEV_CARRIER_WEBHOOK_SECRETS = {
    "econopost": "whsec_dev_econopost_0123456789abcdef",
    "swiftship": "whsec_dev_swiftship_0123456789abcdef",
}


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

    # Carriers (integrations/carriers). CARRIERS_ENABLED: comma-separated codes of the built-in
    # local carriers to offer. An HTTP carrier is offered when HTTP_CARRIER_BASE_URL is set.
    carriers_enabled: Annotated[list[str], NoDecode] = ["econopost", "swiftship"]
    carrier_webhook_secrets: dict[str, str | list[str]] = Field(
        default_factory=lambda: dict(DEV_CARRIER_WEBHOOK_SECRETS)
    )
    carrier_webhook_tolerance_seconds: int = 300
    http_carrier_code: str = "restship"
    http_carrier_name: str = "RestShip"
    http_carrier_base_url: str | None = None
    http_carrier_api_key: str | None = None
    http_carrier_timeout_seconds: float = 10.0
    # Where customers follow a parcel. Empty: each carrier's own tracking page. Otherwise a
    # template with {carrier} and {tracking_number}, such as
    # https://shop.example/track/{carrier}/{tracking_number}
    tracking_url_template: str = ""

    # Notifications (integrations/notifications): SMTP when SMTP_HOST is set, else .eml files
    # written to OUTBOX_DIR.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True  # require STARTTLS on a plain connection
    smtp_tls: bool = False  # implicit TLS from the first byte (port 465)
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "ordergraph <no-reply@ordergraph.local>"
    ops_alert_to: str = "ops@ordergraph.local"  # the team alerts' recipients, comma-separated
    outbox_dir: str = "var/outbox"

    # Order response cache (response_cache.py): answers of order(number)/trackOrder kept per
    # document and viewer, checked against the order's version on every request.
    response_cache_enabled: bool = True
    response_cache_max_entries: int = 10_000
    response_cache_max_bytes: int = 64 * 1024 * 1024
    response_cache_max_documents: int = 256

    @field_validator("carriers_enabled", mode="before")
    @classmethod
    def _split_codes(cls, value: object) -> object:
        if isinstance(value, str):
            return [code.strip() for code in value.split(",") if code.strip()]
        return value

    def webhook_secrets(self, carrier: str) -> list[str]:
        """The webhook secrets accepted for `carrier` (several while one is rotated)."""
        value = self.carrier_webhook_secrets.get(carrier)
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)

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

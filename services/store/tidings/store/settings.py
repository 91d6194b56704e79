"""Settings of the bookstore backend (`STORE_` prefix)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.common.settings import LogSettings


class StoreSettings(BaseSettings):
    """Where the store listens, which database it keeps its orders and catalogue in."""

    model_config = SettingsConfigDict(env_prefix="STORE_", extra="ignore")

    host: str = Field(default="127.0.0.1", title="HTTP host")
    port: int = Field(
        default=8003,
        ge=0,
        le=65535,
        title="HTTP port",
        description="The store API, the book pages, /health, /ready and /metrics (0: any).",
    )
    database_url: str = Field(
        default="sqlite:///.tidings/store.db",
        title="Database URL",
        description=(
            "STORE_DATABASE_URL: SQLAlchemy URL. SQLite on disk by default (the folder is "
            "created); `postgresql://user:pass@host/db` uses Postgres through psycopg 3."
        ),
    )
    public_url: str | None = Field(
        default=None,
        title="Public URL",
        description=(
            "Base of the book and category links the API returns (the widget shows them); "
            "http://<host>:<port> when unset."
        ),
    )
    api_token: SecretStr | None = Field(
        default=None,
        title="Service credential",
        description=(
            "STORE_API_TOKEN: when set, every /api route needs `Authorization: Bearer "
            "<token>` (the responder sends STORE_API_TOKEN too)."
        ),
    )
    sample_data: bool = Field(
        default=True,
        title="Create the sample data",
        description="On first start (empty tables): the packaged catalogue and sample orders.",
    )
    log: LogSettings = Field(default_factory=LogSettings)

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        # Users come with `postgres://` or `postgresql://` URLs; psycopg 3 is the driver here.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value.removeprefix(prefix)
        return value

    def base_url(self, port: int) -> str:
        """The links' base: STORE_PUBLIC_URL, or this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{port}"

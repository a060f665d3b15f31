"""Module-level Tortoise config for the `tortoise` CLI (e.g. `tortoise makemigrations`)."""

from ordergraph.db import tortoise_config

TORTOISE_ORM = tortoise_config()

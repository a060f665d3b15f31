"""Per-request context: the viewer, request-scoped dataloaders, settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ordergraph.auth.viewer import Viewer
from ordergraph.config import Settings


@dataclass
class Context:
    viewer: Viewer
    settings: Settings
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None  # graphql-transport-ws connection_init payload
    ws_slot: str | None = None  # the principal whose WebSocket connection count this holds
    _loaders: dict[str, Any] = field(default_factory=dict)

    def loader(self, name: str, factory) -> Any:
        """One DataLoader per name per request."""
        loader = self._loaders.get(name)
        if loader is None:
            loader = self._loaders[name] = factory()
        return loader

"""Live event streams: the event bus (in-process or Redis Streams), the outbox publisher and
relay, the per-process hub that fans events out to local subscribers."""

"""Strawberry types, inputs, enums and error types per domain; the root schema."""

"""The outside world (payments, carriers, channels, webhooks, notifications) behind Protocols."""

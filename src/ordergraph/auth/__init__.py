"""Viewers (staff, partner, customer, guest), API keys, tokens and permissions."""

"""The Recurring API v3 (agreements and charges on the virtual clock)."""

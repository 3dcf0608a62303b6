"""Narrated scenarios: parse scenarios/*.yaml and run them against a sandbox over HTTP."""

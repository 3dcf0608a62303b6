"""The Donations API (production only): donation payment reports and monthly donation agreements, for
merchant-level keys and partner keys (issue 18; no spec exists, see docs/reference/fidelity.md)."""

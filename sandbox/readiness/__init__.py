"""The readiness report: the official go-live checklists, filled in from what the integration did here."""

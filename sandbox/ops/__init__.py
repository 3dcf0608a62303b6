"""What operators use around the APIs: the request log, fault injection, snapshots, crash-safe state."""

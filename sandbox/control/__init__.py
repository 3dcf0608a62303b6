"""The sandbox's own control plane under /_sandbox/: health, clock, keys, request log, reset, snapshots, faults."""

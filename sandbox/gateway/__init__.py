"""The way in: the front door, the gateway's checks, the ONE policy table, tokens, headers, the admin token."""

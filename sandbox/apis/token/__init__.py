"""The Access token API: /accesstoken/get (merchant and partner keys) and /miami/v1/token (management, accounting)."""

"""vipps-sandbox: a local sandbox of the Vipps MobilePay APIs that enforces the API key types' rules."""

__version__ = "0.1.0"

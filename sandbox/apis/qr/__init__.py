"""The QR API (one-time, merchant redirect and merchant callback QR codes, check-ins and exchange)."""

"""The Report API: ledgers built from production captures and refunds, read with consent (production only)."""

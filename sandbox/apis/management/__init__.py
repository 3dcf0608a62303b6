"""The Management API: sales units, merchants, price packages and product orders (production only)."""

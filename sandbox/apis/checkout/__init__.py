"""The Checkout API v3: sessions, the hosted checkout page, the payment-completed callback."""

"""The Order Management API (images, categories and receipts of ePayment and Recurring orders)."""

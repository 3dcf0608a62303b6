"""The Webhooks API: registrations, HMAC-signed deliveries with retries on the virtual clock, and inboxes."""

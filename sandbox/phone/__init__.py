"""The virtual phone: what the Vipps MobilePay app would show a test user, from every API's cards."""

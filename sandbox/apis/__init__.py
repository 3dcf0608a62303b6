"""One package per Vipps MobilePay API (the moto pattern): routes.py, backend.py, pages.py, rules and schemas."""

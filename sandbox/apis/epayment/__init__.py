"""The ePayment API v1: payments, captures, refunds, the event log, and the simulated user's landing page."""

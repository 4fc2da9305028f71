"""The shop's inbound API under /api/v1 (routes), its input (schemas) and its errors (problems)."""

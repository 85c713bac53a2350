"""Services: the only code that writes. API and CLI call these."""

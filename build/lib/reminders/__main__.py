"""`python -m reminders` runs the command line."""

from reminders.cli import app

app()

"""reminders: keeps iontophoresis patients on their treatment schedule."""

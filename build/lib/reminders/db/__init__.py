"""The database: one package, a module per job.

- `engine`: engines, units of work, and the single-writer rule (read it first).
- `schema`: migrations and the check that a database has the schema this code needs.
- `rows`: compiled INSERTs and UPDATEs of plain rows in one executemany, and Core reads
  that skip the ORM; the stores (`reminders.stores`) write the hot tables with them.
- `bulk`: the import's writer process, which runs prepared INSERTs while the next are
  being prepared.
- `backup`: SQLite's online backup and restore.
"""

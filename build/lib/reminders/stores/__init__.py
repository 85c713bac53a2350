"""The hot tables' stores: for each, the only code that reads and writes its rows,
returning frozen dataclasses. Rarely written tables stay with the ORM (`models`)."""

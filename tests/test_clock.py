"""One clock: below the edges, nothing in `reminders/` reads the time for itself.

Business "now" comes from `Runtime.clock`, read once by an edge and passed down, so that
a test's instants, a simulation's days and the row stamps the sweep compares with its
watermark all come from one clock. This walk finds every call of a wall-clock reader,
through any import alias, and allows only the uses listed below, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import reminders

PACKAGE = Path(reminders.__file__).parent

# Fully qualified readers of the wall clock.
READERS = {
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
    "datetime.date.today", "time.time", "time.time_ns", "time.localtime", "time.gmtime",
}  # fmt: skip

ALLOWED = {
    # The runtime's default clock: the one reader every edge goes through.
    ("runtime.py", "datetime.datetime.now"): "Runtime.clock's default, the wall clock",
    # Ids sort by creation; they order rows, they decide nothing.
    ("ids.py", "time.time"): "the millisecond prefix of time-ordered ids",
    # A file name, so that an earlier copy is never overwritten.
    ("db/backup.py", "datetime.datetime.now"): "the name of the copy kept before a restore",
    # Retry-After is a date the receiver wrote by its clock; what matters is how long
    # to wait from this moment.
    ("channels/webhook.py", "time.time"): "seconds until an HTTP Retry-After date",
}


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Each name a module binds by import, to what it stands for."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def clock_reads(source: str) -> list[tuple[int, str]]:
    """Each call in `source` of a wall-clock reader: (line, fully qualified name)."""
    tree = ast.parse(source)
    names = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or (dotted := _dotted(node.func)) is None:
            continue
        head, _, rest = dotted.partition(".")
        qualified = names.get(head, head) + (f".{rest}" if rest else "")
        if qualified in READERS:
            found.append((node.lineno, qualified))
    return found


def test_the_walk_sees_through_import_aliases() -> None:
    source = (
        "import datetime as dt\nfrom datetime import date as D\nimport time as t\n"
        "from time import time as now\n"
        "dt.datetime.now()\nD.today()\nt.time()\nnow()\nt.monotonic()\n"
    )
    assert [name for _, name in clock_reads(source)] == [
        "datetime.datetime.now", "datetime.date.today", "time.time", "time.time",
    ]  # fmt: skip


def test_nothing_below_the_edges_reads_the_wall_clock() -> None:
    found = {
        (str(path.relative_to(PACKAGE)), name): line
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
        for line, name in clock_reads(path.read_text())
    }
    unexpected = {f"{where}:{line} calls {name}" for (where, name), line in found.items()}
    unexpected -= {f"{w}:{found[(w, n)]} calls {n}" for (w, n) in ALLOWED if (w, n) in found}
    assert not unexpected, "read Runtime.clock at the edge and pass `now` down"
    assert set(ALLOWED) <= set(found), "an allowed use is gone: take it off the list"


def test_no_business_query_asks_the_database_for_the_time() -> None:
    # PostgreSQL's now() is not the runtime's clock, and no test can move it.
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        for word in ("func.now(", "CURRENT_TIMESTAMP", "now()", "datetime('now'"):
            assert word not in text.replace("clock.now()", ""), f"{path.name} uses SQL {word}"

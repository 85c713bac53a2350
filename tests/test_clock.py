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

# Fully qualified readers of the wall clock, the runtime's default clock among them.
READERS = {
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
    "datetime.date.today", "time.time", "time.time_ns", "time.localtime", "time.gmtime",
    "reminders.runtime.wall_clock",
}  # fmt: skip

# Each place allowed to read the wall clock: (module, reader) -> (how many calls, why).
ALLOWED = {
    ("runtime.py", "datetime.datetime.now"): (1, "Runtime.clock's default, the wall clock"),
    ("ids.py", "time.time"): (2, "the millisecond prefix of time-ordered ids: they order rows"),
    ("db/backup.py", "datetime.datetime.now"): (
        1, "the name of the copy kept before a restore, so no copy is overwritten"
    ),
    ("channels/webhook.py", "time.time"): (
        1, "seconds from now until an HTTP Retry-After date the receiver wrote"
    ),
    ("scheduler.py", "reminders.runtime.wall_clock"): (
        2, "APScheduler fires by the wall clock: when its jobs next run, not what they do"
    ),
}  # fmt: skip


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
    """Each use in `source` of a wall-clock reader, called or passed on as a value:
    (line, fully qualified name)."""
    tree = ast.parse(source)
    names = _aliases(tree)
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name | ast.Attribute) or id(node) in inner:
            continue
        dotted = _dotted(node)
        if dotted is None:
            continue
        head, _, rest = dotted.partition(".")
        qualified = names.get(head, head) + (f".{rest}" if rest else "")
        if qualified in READERS:
            found.append((node.lineno, qualified))
    return sorted(found)


def test_the_walk_sees_through_import_aliases() -> None:
    source = (
        "import datetime as dt\nfrom datetime import date as D\nimport time as t\n"
        "from time import time as now\n"
        "dt.datetime.now()\nD.today()\nt.time()\nnow()\nt.monotonic()\nclock = now\n"
    )
    assert [name for _, name in clock_reads(source)] == [
        "datetime.datetime.now", "datetime.date.today", "time.time", "time.time", "time.time",
    ]  # fmt: skip


def test_nothing_below_the_edges_reads_the_wall_clock() -> None:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" not in path.parts:
            for line, name in clock_reads(path.read_text()):
                found.setdefault((str(path.relative_to(PACKAGE)), name), []).append(line)
    counted = {where: len(lines) for where, lines in found.items()}
    allowed = {where: count for where, (count, _why) in ALLOWED.items()}
    assert counted == allowed, (
        f"reads of the wall clock by place: {found}; read Runtime.clock at the edge and "
        "pass `now` down, or list a legitimate use in ALLOWED with its reason"
    )


def test_no_business_query_asks_the_database_for_the_time() -> None:
    # PostgreSQL's now() is not the runtime's clock, and no test can move it.
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        for word in ("func.now(", "CURRENT_TIMESTAMP", "now()", "datetime('now'"):
            assert word not in text.replace("clock.now()", ""), f"{path.name} uses SQL {word}"

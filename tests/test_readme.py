"""The README's walk-through, run as pasted (on a free port and a throwaway var dir)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from reminders.settings import PROJECT_ROOT
from tests.processes import env_for
from tests.servers import free_port

README = PROJECT_ROOT / "README.md"


def walk_through() -> str:
    """The shell block that follows "A walk-through against" in the README."""
    text = README.read_text()
    start = text.index("A walk-through against")
    found = re.search(r"```sh\n(.*?)```", text[start:], re.DOTALL)
    assert found, "the README has a walk-through block"
    return found.group(1)


def test_the_readme_walk_through_runs_as_pasted(tmp_path: Path) -> None:
    port = free_port()
    script = walk_through().replace("8765", str(port))
    # As pasted into a shell, then the server it started is stopped.
    done = subprocess.run(
        ["bash", "-c", f"{script}\nkill -INT $! && wait $!"],
        cwd=PROJECT_ROOT, env=env_for(tmp_path), capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    confirmed, adherence, endpoint, deliveries = answers
    assert confirmed["status"] == "confirmed"
    assert (adherence["confirmed"], adherence["rate"]) == (1, 1.0)
    assert endpoint["secret"].startswith("whsec_")
    assert "items" in deliveries

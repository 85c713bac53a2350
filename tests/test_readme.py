"""The README's walk-through, run as pasted (on a free port and a throwaway var dir)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from reminders.settings import PROJECT_ROOT
from tests.processes import env_for, unshifted
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
    script = walk_through().replace("8765", str(free_port())).replace("8766", str(free_port()))
    # The one test of today's date: the walk-through enrolls from `date +%F`, so it runs
    # on the machine's own clock even in a run whose clock is shifted.
    env = unshifted(env_for(tmp_path))
    # As pasted into a shell: it stops what it started itself.
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    confirmed, adherence, found = (json.loads(line) for line in lines[:3])
    assert confirmed["status"] == "confirmed"
    assert (adherence["confirmed"], adherence["rate"]) == (1, 1.0)
    assert [p["external_id"] for p in found["items"]] == ["EHR-1042"]
    assert found["next_cursor"] is None
    listening, delivered = lines[3:]
    assert listening.startswith("listening on http://127.0.0.1:")
    assert re.fullmatch(r"session\.confirmed \S+ signature ok", delivered), delivered

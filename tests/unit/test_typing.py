"""The public API keeps user types: decorated handlers, typed topics, positions.

mypy checks two files: one that must pass (assert_type on the decorated handlers and
the publish results) and one that must fail (the wrong event type for a topic).
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "typing"


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_decorators_and_topics_keep_types() -> None:
    result = _mypy(HERE / "decorators.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_publishing_the_wrong_event_type_is_a_type_error() -> None:
    result = _mypy(HERE / "wrong.py")
    assert result.returncode == 1
    assert 'incompatible type "B"; expected "A"' in result.stdout

"""What the README promises about a program's metrics.json, kept (issue 23):
values that are not numbers are left out and the run's record says so; a file
that is empty or a list is named as such, not "no metrics.json"; a byte-order
mark is not content. Real command runs through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import read_state, xorch

WRITER = """\
import pathlib, sys
pathlib.Path(sys.argv[1], "metrics.json").write_bytes({payload!r})
"""


def attempt_after(workdir: Path, payload: bytes) -> dict:
    (workdir / "write.py").write_text(WRITER.format(payload=payload), encoding="utf-8")
    out = workdir / "out"
    config = {
        "mode": "run-experiments",
        "experiments_runner": {"output_base_dir": str(out), "seeds": [1], "max_retries": 0},
        "command": ["python", "write.py", "{run_dir}"],
    }
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = xorch("launch", str(path), cwd=workdir, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr
    return read_state(out)["runs"][0]["attempts"][-1]


@pytest.mark.parametrize(
    ("payload", "outcome", "reason"),
    [
        (
            b'{"score": 0.5, "label": "good", "parts": [1, 2]}',
            "completed",
            "metrics.json: left out values that are not numbers: label, parts",
        ),
        (
            b'{"metrics": {"score": 0.5, "note": null}}',
            "completed",
            "metrics.json: left out values that are not numbers: note",
        ),
        (b"", "no_metrics", "; metrics.json is empty"),
        (b"  \n", "no_metrics", "; metrics.json is empty"),
        (b"[1, 2]", "no_metrics", "; metrics.json is a list, not an object"),
        (b'"0.5"', "no_metrics", "; metrics.json is a string, not an object"),
        (b'{"label": "good"}', "no_metrics", "; metrics.json has no number values"),
    ],
)
def test_what_is_wrong_with_metrics_json_is_in_the_record(workdir, payload, outcome, reason):
    attempt = attempt_after(workdir, payload)
    assert attempt["outcome"] == outcome, attempt
    assert attempt["reason"].endswith(reason), attempt


def test_a_byte_order_mark_is_not_content(workdir):
    attempt = attempt_after(workdir, b'\xef\xbb\xbf{"score": 0.25}')
    assert attempt["outcome"] == "completed", attempt
    state = read_state(workdir / "out")
    assert state["runs"][0]["metrics"] == {"score": 0.25}

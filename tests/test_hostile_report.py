"""``hamq report`` on damaged or hand-edited sweep results: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamq.cli.main import main

HEADER = "name,status,seed,w_bits,regularizer,lambda,accuracy,cells_on,cells_total\n"
GOOD = "w8-baseline,ok,0,8,none,0,0.9,100,200\n"


def report(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(folder)])
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"results.json": "{not json"}, "cannot read its results"),
        ({"results.json": "[1, 2, 3]"}, "not a list of rows"),
        ({"results.json": '{"name": "x"}'}, "not a list of rows"),
        ({"results.json": b"\xff\xfe["}, "cannot read its results"),
        ({"results.json": '[{"name": "a", "status": "ok"}]'}, "has accuracy = None"),
        ({"results.csv": HEADER + "w8-baseline,ok,0,8,none,0,,100,200\n"}, "accuracy = None"),
        ({"results.csv": HEADER + "w8-baseline,ok,0,8,none,0,nan,100,200\n"}, "accuracy = nan"),
        ({"results.csv": HEADER + ",ok,0,8,none,0,0.9,100,200\n"}, "no name or status"),
        ({"results.csv": HEADER + "w8-baseline,ok,0,8,none,0,high,100,200\n"}, "accuracy = 'high'"),
    ],
)
def test_damaged_results_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict, message: str
) -> None:
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    code, err = report(tmp_path, capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_sound_results_file_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.csv").write_text(HEADER + GOOD)
    code, err = report(tmp_path, capsys)
    assert code == 0, err
    assert "w8-baseline" in (tmp_path / "report.md").read_text()

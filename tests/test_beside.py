"""dml_experiment.report.beside: two sweeps' verdicts claim by claim (the README's quick vs
full table), and `dml beside`."""
from __future__ import annotations

import json

import pytest

from dml_experiment.report.beside import side_by_side
from flows.cli import main


def write(directory, sweep, rows, not_converged=None):
    """A verdicts.json with one comparison per (cid, claim, verdict, diff, n) row."""
    comps = {}
    for cid, claim, verdict, diff, n in rows:
        comp = comps.setdefault(cid, {"verdicts": [], "not_converged": not_converged or {}})
        comp["verdicts"].append({"claim": claim, "verdict": verdict, "diff": diff, "n": n})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "verdicts.json").write_text(json.dumps({"sweep": sweep, "comparisons": comps}))
    return directory


def test_claims_line_up_and_agreement_is_counted(tmp_path):
    quick = write(tmp_path / "quick", "quick-1", [
        ("C1", "a > b", "not shown", -0.068, 3),
        ("C2", "c > d", "holds", 0.291, 3),
        ("C6", "e > f", "reversed", -0.6, 3),
    ], not_converged={"triplet": "gained 7.3 points"})
    full = write(tmp_path / "full", "full-2", [
        ("C1", "a > b", "holds", 0.031, 10),
        ("C2", "c > d", "holds", 0.25, 10),
        ("C6", "e > f", "reversed", -0.4, 10),
        ("C8", "g ~ h", "equivalent", 0.001, 10),
    ])
    table = side_by_side({"quick": quick, "full": full})
    lines = table.splitlines()
    assert lines[0] == "| comparison | claim tested | quick (`quick-1`) | full (`full-2`) | same verdict |"
    assert "| C1 | `a > b` | not shown -6.8, n=3 (not converged) | **holds** +3.1, n=10 | no |" in lines
    assert "| C2 | `c > d` | **holds** +29.1, n=3 (not converged) | **holds** +25.0, n=10 | yes |" in lines
    assert "| C8 | `g ~ h` | — | **equivalent** +0.1, n=10 | no |" in lines
    # 2 of the 3 shared claims agree; full decides all 3 of them, quick matches 2
    assert lines[-1] == ("quick reaches full's verdict on 2 of 3 claims, and on 2 of the 3 that full decides "
                         "(holds, reversed or equivalent).")


def test_a_claim_is_marked_only_for_the_families_of_its_own_arms(tmp_path):
    full = write(tmp_path / "full", "full-2", [("C5", "a > b", "holds", 0.5, 10), ("C5", "a > c", "reversed", -0.04, 10)],
                 not_converged={"lifted_structured": "gained 3.3 points"})
    doc = json.loads((full / "verdicts.json").read_text())
    doc["comparisons"]["C5"]["verdicts"][0]["not_converged"] = ["lifted_structured"]
    doc["comparisons"]["C5"]["verdicts"][1]["not_converged"] = []
    (full / "verdicts.json").write_text(json.dumps(doc))
    quick = write(tmp_path / "quick", "quick-1", [("C5", "a > b", "holds", 0.4, 3), ("C5", "a > c", "not shown", -0.1, 3)])
    lines = side_by_side({"quick": quick, "full": full}).splitlines()
    assert "| C5 | `a > b` | **holds** +40.0, n=3 | **holds** +50.0, n=10 (not converged) | yes |" in lines
    assert "| C5 | `a > c` | not shown -10.0, n=3 | **reversed** -4.0, n=10 | no |" in lines


def test_a_directory_without_verdicts_is_named(tmp_path):
    full = write(tmp_path / "full", "full-2", [("C1", "a > b", "holds", 0.03, 10)])
    with pytest.raises(ValueError, match=r"empty/verdicts.json: no verdicts.json"):
        side_by_side({"quick": tmp_path / "empty", "full": full})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "verdicts.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad/verdicts.json: not JSON"):
        side_by_side({"bad": tmp_path / "bad", "full": full})
    with pytest.raises(ValueError, match="at least two"):
        side_by_side({"full": full})


def test_cli_prints_the_table_and_checks_labels(tmp_path, capsys):
    a = write(tmp_path / "quick", "quick-1", [("C1", "a > b", "holds", 0.05, 3)])
    b = write(tmp_path / "full", "full-2", [("C1", "a > b", "holds", 0.04, 10)])
    assert main(["beside", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "| C1 | `a > b` | **holds** +5.0, n=3 | **holds** +4.0, n=10 | yes |" in out
    assert main(["beside", str(a), str(b), "--labels", "only-one"]) == 2
    assert "--labels: 1 labels for 2 directories" in capsys.readouterr().err


def test_two_directories_with_one_label_are_refused_by_name(tmp_path, capsys):
    a = write(tmp_path / "x" / "full", "full-1", [("C1", "a > b", "holds", 0.05, 3)])
    b = write(tmp_path / "y" / "full", "full-2", [("C1", "a > b", "holds", 0.04, 10)])
    assert main(["beside", str(a), str(b)]) == 2  # both default to their basename, "full"
    assert "--labels: 'full' names two directories" in capsys.readouterr().err
    assert main(["beside", str(a), str(b), "--labels", "x", "y"]) == 0

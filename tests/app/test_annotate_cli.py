"""`saegold annotate` at the command line: one-line errors and clear empty-queue messages."""
from __future__ import annotations

from saegold.tui.cli import main


def test_missing_project_is_one_line_error(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "nope.db"), "annotate", "--annotator", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("saegold: error:") and "no such project database" in err and "\n" not in err


def test_empty_project_and_empty_review_queue_say_why(project, capsys):
    assert main(["--db", str(project.path), "annotate", "--annotator", "x"]) == 0
    assert "no features with examples" in capsys.readouterr().out
    assert main(["--db", str(project.path), "annotate", "--annotator", "boss", "--lead"]) == 0
    assert "no disagreements to review" in capsys.readouterr().out


def test_empty_annotator_name_is_refused(project, capsys):
    assert main(["--db", str(project.path), "annotate", "--annotator", "  "]) == 2
    assert "--annotator" in capsys.readouterr().err


def test_startup_does_not_import_heavy_engine_libraries():
    import subprocess
    import sys
    code = ("import sys; from saegold.tui.cli import build_parser, _named_command; "
            "build_parser(only=_named_command(['annotate'])); import saegold.tui.app.app, saegold.tui.app.agreement; "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'sae_lens') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

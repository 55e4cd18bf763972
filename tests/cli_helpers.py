"""Running the command line inside a test, and the shape every user mistake must have."""

from __future__ import annotations

from expnet.cli.main import main


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``expnet *argv``; argparse's own exits are codes too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, fragment):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]

"""The command line: `skinfluence demo` runs and its refit check holds."""

import re
import subprocess
import sys

from skinfluence.cli import main


def test_demo_checks_predictions_against_refits(capsys):
    assert main(["demo", "--n-test", "2", "--check", "5"]) == 0
    out = capsys.readouterr().out
    assert "most helpful" in out and "most harmful" in out
    r = dict(re.findall(r"\((?:Koh & Liang|method='(newton)')\)\s+Pearson r = "
                        r"([0-9.]+)", out))
    assert float(r["newton"]) > 0.99  # against actual leave-one-out refits


def test_help_and_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "skinfluence", "demo", "--help"],
                            capture_output=True, text=True, check=True)
    assert "digits" in result.stdout
    assert main([]) == 2  # no command: prints help

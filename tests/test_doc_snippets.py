"""Every Python snippet of the README and the documentation runs (docs must not lag
the code): the ``python`` code blocks of each file, in order, in one namespace."""

import re
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]


def _snippets(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text,
                             flags=re.M):
        lines = [line[3:] for line in match.group(1).splitlines()]
        blocks.append("\n".join(lines))
    return blocks


@pytest.mark.parametrize("path", [f for f in FILES if _snippets(f)],
                         ids=lambda f: f.name)
def test_snippets_run(path):
    matplotlib.use("Agg")
    namespace = {"__name__": "__snippet__"}
    for i, code in enumerate(_snippets(path)):
        try:
            exec(compile(code, f"{path.name}[snippet {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message
            raise AssertionError(
                f"{path.name}, snippet {i} fails ({type(exc).__name__}: {exc}):\n{code}"
            ) from exc

"""The Examples sections of the installed package's docstrings run and hold."""

import doctest
import importlib
import pkgutil

import pytest

import skinfluence

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(skinfluence.__path__, "skinfluence.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", ["skinfluence", *MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_examples_exist():
    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for t in finder.find(skinfluence.explainer))
    assert examples >= 5

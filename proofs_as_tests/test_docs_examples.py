"""The docs pages' runnable examples: every `>>>` line of a page listed here runs, and its output
is compared, as a doctest (the pages are not modules, so `--doctest-modules` does not see them)."""

import doctest
import pathlib

import jax
import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@jax.numpy_dtype_promotion("standard")  # as a user runs them (the proofs' default is strict)
@pytest.mark.parametrize("page", ["training.md"])
def test_page_examples_run(page):
    """The examples of `docs/<page>` give the outputs the page shows."""
    text = (DOCS / page).read_text()
    assert ">>> " in text, f"docs/{page} has no example to run"
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, f"docs/{page}", str(DOCS / page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of docs/{page} failed (output above)"

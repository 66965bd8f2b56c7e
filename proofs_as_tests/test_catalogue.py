"""The catalogue of the notes (`docs/notes.md`) against the code: every function and test it names
exists, every public function of the math appears in it, every item number used anywhere is
defined there, and no file of the repository sends the reader to a file outside it."""

import inspect
import pathlib
import re
import subprocess

import pytest

import reference as rf

ROOT = pathlib.Path(__file__).resolve().parents[1]
CATALOGUE = (ROOT / "docs" / "notes.md").read_text()
# Training infrastructure and environment adapters: documented on the training page, not items.
NOT_ITEMS = {"checkpoint_header", "train_in_chunks", "cooperative_game_env", "simple_spread_env"}


def defined_items() -> set[str]:
    return set(re.findall(r"^\| ([ABC]\d+[a-e]?) \|", CATALOGUE, re.M))


def test_every_item_is_defined_once_in_order():
    rows = re.findall(r"^\| ([ABC])(\d+)([a-e]?) \|", CATALOGUE, re.M)
    for letter, count in (("A", 51), ("B", 25), ("C", 29)):
        numbers = [int(n) for kind, n, sub in rows if kind == letter and not sub]
        assert numbers == list(range(1, count + 1)), f"{letter}-items missing, repeated or out of order"
    assert len(rows) == len(set(rows)), "an item is defined twice"


def test_every_named_function_and_test_exists():
    names = set(re.findall(r"`([a-z_][a-z0-9_]*|[A-Z][A-Za-z]+)`", CATALOGUE))
    tests = re.findall(r"`(test_\w+\.py)::(test_\w+)`", CATALOGUE)
    functions = {n for n in names if not n.startswith("test_") and n not in {"pi", "P", "R"}}
    missing = sorted(n for n in functions if n not in rf.__all__ and "." not in n)
    assert not missing, f"the catalogue names functions that do not exist: {missing}"
    assert tests, "the catalogue cites no test"
    for file, test in tests:
        source = (ROOT / "proofs_as_tests" / file).read_text()
        assert f"def {test}(" in source, f"the catalogue cites missing {file}::{test}"


def test_every_public_function_appears_in_the_catalogue():
    public = {n for n in rf.__all__ if inspect.isfunction(getattr(rf, n)) or n in ("FiniteMDP", "CooperativeGame")}
    absent = sorted(n for n in public - NOT_ITEMS if f"`{n}`" not in CATALOGUE)
    assert not absent, f"public functions missing from docs/notes.md: {absent}"


def cited_items(text: str) -> set[str]:
    """Item numbers cited as such ("Notes A12", "A26, B12:", "correction C5", "C26 / …")."""
    return set(re.findall(r"(?<![\w/.§])([ABC]\d{1,2}[a-e]?)(?![\w])", text))


@pytest.mark.parametrize("folder", ["reference", "proofs_as_tests", "docs", "examples"])
def test_every_item_number_used_is_defined(folder):
    defined = defined_items() | {"A1", "B1", "C1"}
    unknown = {}
    for path in sorted((ROOT / folder).rglob("*")):
        if path.suffix not in (".py", ".md") or path.name == "notes.md":
            continue
        for item in cited_items(path.read_text()):
            letter, number = item[0], int(re.sub(r"\D", "", item[1:]))
            limit = {"A": 51, "B": 25, "C": 29}[letter]
            # B15a/B15b name the parts of B15; "C0" is matplotlib's first colour, not an item
            base = item if letter == "A" else f"{letter}{number}"
            if 1 <= number <= limit and base not in defined:
                unknown.setdefault(item, path.name)
    assert not unknown, f"item numbers used but not defined in docs/notes.md: {unknown}"


OUTSIDE = re.compile(
    "|".join([r"MATH" + r"\.md", r"SPEC" + r"\.md", r"STYLE" + r"\.md", r"\bseed/", r"\bissue " + r"\d+\b"])
)


def test_no_file_refers_to_a_file_outside_the_repository():
    """A reader has only the repository: no file may cite the project's private planning files, the
    raw notes' path, or an issue tracker the reader cannot open."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".yml", ".toml", ".txt", ".cfg", "") or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)

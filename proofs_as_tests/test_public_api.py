"""The public API: SPEC's names with SPEC's argument order, each documented with its
equation, source and proving test."""

import importlib.metadata
import inspect
import pathlib
import re

import pytest

import reference as rf
import reference.testing as rft
from reference import training

# The public API's contract (code outside the project relies on it): name -> leading positional
# parameters, in order.
SPEC_SIGNATURES = {
    "FiniteMDP": ["P", "R", "gamma", "rho0"],
    "random_mdp": ["key", "num_states", "num_actions", "gamma"],
    "discounted_return": ["rewards", "gamma"],
    "sample_trajectory": ["key", "mdp", "pi", "horizon"],
    "bellman_expectation_operator": ["mdp", "pi", "V"],
    "policy_evaluation": ["mdp", "pi"],
    "bellman_optimality_operator": ["mdp", "V"],
    "value_iteration": ["mdp", "tol", "max_iters"],
    "greedy_policy": ["mdp", "V"],
    "policy_iteration": ["mdp"],
    "one_hot_policy": ["actions", "num_actions"],
    "state_values": ["mdp", "pi"],
    "action_values": ["mdp", "pi"],
    "expected_return": ["mdp", "pi"],
    "advantages": ["mdp", "pi"],
    "discounted_visitation": ["mdp", "pi"],
    # §3
    "surrogate_objective": ["mdp", "pi", "pi_bar"],
    "performance_difference": ["mdp", "pi", "pi_bar"],
    "kl_divergence": ["p", "q"],
    "max_kl": ["pi", "pi_bar"],
    "mean_kl": ["mdp", "pi", "pi_bar"],
    "penalty_coefficient": ["mdp", "pi"],
    "trpo_lower_bound": ["mdp", "pi", "pi_bar"],
    "monotonic_policy_iteration": ["mdp", "pi0", "num_iters"],
    "natural_gradient_step": ["g", "fisher_vector_product", "delta"],
    "fisher_vector_product": ["kl_fn", "params"],
    "backtracking_line_search": [],
    "trpo_update": [],
    "probability_ratio": ["logp_new", "logp_old"],
    "ppo_clip_objective": ["ratio", "advantage", "epsilon"],
    "generalized_advantage_estimate": ["rewards", "values", "dones", "gamma", "lam"],
    # §4
    "CooperativeGame": ["P", "R", "gamma", "rho0"],
    "random_game": ["key", "num_states", "action_sizes", "gamma"],
    "joint_policy": ["policies"],
    "marginal_action_values": ["game", "policies", "agents"],
    "multi_agent_advantage": ["game", "policies", "prior_agents", "agents"],
    "multi_agent_surrogate": ["game", "policies", "new_policies", "agents"],
    "multi_agent_lower_bound": ["game", "policies", "new_policies", "order"],
    "multi_agent_policy_iteration": ["key", "game", "policies", "num_iters"],
    "nash_gap": ["game", "policies"],
    "parameter_sharing_game": ["num_agents", "gamma"],
    "mappo_objective": ["ratios", "advantage", "epsilon"],
    "happo_factor": ["previous_ratios", "advantage"],
    "happo_objective": ["ratio", "factor", "epsilon"],
    "hatrpo_update": [],
    "happo_update": [],
}

TEST_DIR = pathlib.Path(__file__).parent


def parameters(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    names = [p for p in inspect.signature(target).parameters if p != "self"]
    return names


@pytest.mark.parametrize("name", sorted(SPEC_SIGNATURES))
def test_spec_names_exist_with_spec_arguments(name):
    assert name in rf.__all__, f"{name} is not exported"
    obj = getattr(rf, name)
    expected = SPEC_SIGNATURES[name]
    assert parameters(obj)[: len(expected)] == expected


def test_all_is_exactly_the_public_namespace():
    public = {n for n in dir(rf) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(rf, n))}
    assert set(rf.__all__) == public - modules


# Training infrastructure, not an equation of the notes: documented, but with no formula to show.
TOOLING = {"checkpoint_header", "train_in_chunks"}


@pytest.mark.parametrize("name", sorted(rf.__all__))
def test_every_public_name_is_documented_with_equation_and_source(name):
    doc = inspect.getdoc(getattr(rf, name)) or ""
    assert len(doc) > 40, f"{name} has no real docstring"
    obj = getattr(rf, name)
    if (inspect.isfunction(obj) and name not in TOOLING) or obj in (rf.FiniteMDP, rf.CooperativeGame):
        assert "$$" in doc, f"{name}: no displayed equation"
        assert re.search(r"Notes A\d+|notes' items? A\d+|Notes A\d+[a-z]", doc), f"{name}: no A-number"


@pytest.mark.parametrize("name", sorted(n for n in rf.__all__ if inspect.isfunction(getattr(rf, n))))
def test_cited_proving_tests_exist(name):
    """Every `proofs_as_tests/<file>.py::<test>` a docstring cites is a real test."""
    doc = inspect.getdoc(getattr(rf, name)) or ""
    doc = re.sub(r"\s+", "", doc)  # citations may wrap across lines
    cited = re.findall(r"proofs_as_tests/(test_\w+\.py)::(test_\w+)", doc)
    cited += [(f, t) for f, t in re.findall(r"proofs_as_tests/(test_\w+\.py)::\w+`?,?`?::(test_\w+)", doc)]
    for file, test in cited:
        source = (TEST_DIR / file).read_text()
        assert f"def {test}(" in source, f"{name} cites missing {file}::{test}"


def test_api_page_lists_every_public_name():
    """docs/api.md lists every name of `reference.__all__` (and nothing else) above its
    `reference.training` section, the public names of `reference.training` in that section, and
    those of `reference.testing` in the last one."""
    page = (TEST_DIR.parent / "docs" / "api.md").read_text()
    flat, rest = page.split("## `reference.training`", 1)
    train, testing = rest.split("## `reference.testing`", 1)
    listed = set(re.findall(r"^\| \[`(\w+)`\]", flat, re.M))
    assert listed == set(rf.__all__), (set(rf.__all__) - listed, listed - set(rf.__all__))
    assert set(re.findall(r"^\| \[`(\w+)`\]", train, re.M)) == set(training.__all__)
    assert not set(training.__all__) & set(rf.__all__), "the flat namespace re-exports training names"
    documented = {"Conventions", "ConformanceError", "UsageError", "Trajectory", "trajectories", "agent_orders", "mdps"}
    documented |= {"policies", "policy_pairs", "games"} | {n for n in rft.__all__ if n.startswith("check_")}
    assert set(re.findall(r"^\| \[`(\w+)`\]", testing, re.M)) == documented


def test_one_version_source():
    """The version lives in `reference.__version__` alone (pyproject reads it from there)."""
    pyproject = (TEST_DIR.parent / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'path = "reference/__init__.py"' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", rf.__version__)
    assert f"## {rf.__version__}" in (TEST_DIR.parent / "CHANGELOG.md").read_text()
    # assigned once: hatch reads the first assignment, Python keeps the last (a stale second one
    # made the installed 0.2.0 report itself as 0.1.0)
    source = (TEST_DIR.parent / "reference" / "__init__.py").read_text()
    assert len(re.findall(r"^__version__ = ", source, re.M)) == 1
    assert rf.__version__ == importlib.metadata.version("reference-rl")


def test_no_source_file_holds_control_characters():
    """A LaTeX command written in a non-raw string loses its backslash to a control character
    (`\\frac` → form feed + "rac", `\\bar` → backspace + "ar"): the formula then renders as garbage.
    No file of the package may hold one (tabs included)."""
    package = pathlib.Path(rf.__file__).parent
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        bad = [(n, line) for n, line in enumerate(text.split("\n"), 1) if re.search(r"[\x00-\x08\x0b-\x1f]", line)]
        assert not bad, f"{path.name}:{bad[0][0]} holds a control character: {bad[0][1]!r}"


def test_every_training_name_has_a_doctested_example():
    """Every public name of `reference.training` is used in a runnable example: a `>>>` line of a
    docstring that `--doctest-modules` runs, or of `docs/training.md`, which
    `test_docs_examples.py` runs."""
    import doctest
    import sys

    finder, parser = doctest.DocTestFinder(), doctest.DocTestParser()
    sources = []
    modules = {getattr(training, n).__module__ for n in training.__all__ if hasattr(getattr(training, n), "__module__")}
    for module in sorted(m for m in modules if m.startswith("reference")):
        for test in finder.find(sys.modules[module]):
            sources += [example.source for example in test.examples]
    page = (TEST_DIR.parent / "docs" / "training.md").read_text()
    sources += [example.source for example in parser.get_examples(page)]
    code = "\n".join(sources)
    missing = sorted(n for n in training.__all__ if not re.search(rf"\btraining\.{n}\b", code))
    assert not missing, f"no runnable example uses these names: {missing}"

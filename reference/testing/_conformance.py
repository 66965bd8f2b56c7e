"""Conformance checks: point the property sweep at someone else's implementation.

Each `check_*` takes the user's callable and a `Conventions` declaring how it is called, draws
inputs with hypothesis, computes the quantity independently here (numpy, float64, in the plainest
form of its equation) and compares. On the first mismatch hypothesis shrinks the input, and the
check raises `ConformanceError` naming the equation violated, the index, both values and the
(shrunk) input. A check returns `None` when every drawn example conforms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
from hypothesis import (
    HealthCheck,
    Phase,
    currently_in_test_context,
    given,
    seed as hypothesis_seed,
    settings,
    strategies as st,
)

from ._strategies import Draw, Trajectory, agent_orders, trajectories


class ConformanceError(AssertionError):
    """An implementation disagrees with the equation it claims to compute."""


class UsageError(ValueError):
    """A check cannot use what it was given: not a deviation from the equation.

    The function cannot be called as the check's declared call (its signature), it returned an
    array of the wrong shape or something that is not an array of numbers, or a `Conventions`
    value (or `max_examples`, `seed`) is invalid. The message shows the offending input.
    """


@dataclasses.dataclass(frozen=True)
class Conventions:
    r"""How the implementation under test is called, and what it returns.

    A declared convention is not a deviation: the checks compare against the equation *under the
    declared convention*. Only the fields a check reads matter to it.

    **Fields:**

    - `arrays`: `"numpy"`, `"jax"` or `"torch"` — the array type the callable receives (always
      float64; JAX calls run under `jax.enable_x64`; `"torch"` needs PyTorch installed, CPU
      tensors, and differentiates with `torch.autograd`).
    - `layout`: `"time_major"` (`[T, B]`), `"batch_major"` (`[B, T]`) or `"single"` (one
      trajectory `[T]`, the callable is called once per environment) — GAE and returns.
    - `flags`: `"done"` (`d_t ∈ {0, 1}`, 1 when the episode ended after step `t`),
      `"discount"` (`γ_t = γ(1 − d_t)`, rlax's `discount_t`) or `"episode_start"` (`s_t = 1`
      when observation `t` starts an episode, i.e. `s_t = d_{t−1}`: stable-baselines3's
      `episode_starts`, CleanRL's `dones`; the callable also receives `last_episode_starts`
      `[B]`, `s_T = d_{T−1}`, whether the observation after the rollout starts one —
      stable-baselines3's `dones` argument of `compute_returns_and_advantage`. The first row
      `s_0` belongs to the previous rollout and must not change the result: it is filled with
      flags unrelated to this rollout) — GAE and returns. `"episode_start"` is not combined with
      `truncation="bootstrap"`.
    - `flag_dtype`: `"float"` (flags passed as 0.0/1.0) or `"bool"` (as booleans, for code that
      negates them with `~`; not with `flags="discount"`) — GAE and returns.
    - `truncation`: `"as_termination"` (time-limit ends are passed as ordinary episode ends and
      treated as terminal: no bootstrap) or `"bootstrap"` (the callable receives terminations,
      truncations and the final states' values separately, and must bootstrap a truncated step
      with $V$ of the state it reached) — GAE and returns.
    - `sign`: `"objective"` (the PPO surrogate to maximise) or `"loss"` (its negative).
    - `reduction`: `"none"` (per sample) or `"mean"` (averaged over the batch) — PPO.
    - `advantages`: `"raw"` or `"normalised"` (the callable standardises the batch's advantages,
      $(A - \bar A)/(\mathrm{std}(A) + 10^{-8})$ with the population std, before the clip, as
      CleanRL's JAX script, purejaxrl and JaxMARL do) or `"normalised_sample_std"` (the same with
      the sample std, $N - 1$ in the denominator: `torch.std`'s default, as CleanRL's PyTorch
      scripts use; undefined for one sample, so batches of at least 2 are drawn) — PPO and HAPPO.
    - `dual_clip`: `None` (PPO's clip alone) or a constant $c > 1$: the callable applies the dual
      clip of Ye et al. (2020), Tianshou's `dual_clip`: where $A < 0$ the objective is
      $\max(\min(rA, \mathrm{clip}(r)A), cA)$, which bounds how much one sample with a huge ratio
      can push — PPO and HAPPO.
    - `kl_inputs`: `"probs"`, `"logits"` or `"log_probs"` — categorical KL.
    - `kl_direction`: `"first_second"` (the callable computes $D_{KL}(p\|q)$ of its first
      argument against its second) or `"second_first"`.
    - `scale`: `"std"` or `"log_std"` — how a diagonal Gaussian's scale is passed.
    - `kl_dimensions`: `"summed"` (the diagonal Gaussian's KL, `[B]`) or `"per_dimension"` (the
      callable returns each dimension's term, `[B, D]`, as `torch.distributions.kl_divergence` of two
      `Normal`s does and stable-baselines3's `kl_divergence` returns) — Gaussian KL.
    - `kl_estimator`: `"k1"` ($-\log r$), `"k2"` ($\tfrac12(\log r)^2$) or `"k3"`
      ($(r - 1) - \log r$), with $r = \pi_{new}(a)/\pi_{old}(a)$ at an action drawn from the old
      policy — the sampled estimate of $D_{KL}(\pi_{old}\|\pi_{new})$ that `check_sampled_kl`
      expects (stable-baselines3's and CleanRL's `approx_kl` are k3; CleanRL's `old_approx_kl` is
      k1).
    - `damping`: $\lambda \ge 0$, added by the callable to the Fisher-vector product it is handed
      ($Hv + \lambda v$, Tianshou's and HARL's `damping`, OpenAI Baselines' `cg_damping`): the
      step is then the natural step of $H + \lambda I$, in its direction and its scale —
      `check_trpo_step`.
    - `sequential`: `"ratios"` (the callable receives every agent's post-update ratio and returns
      the factors) or `"update"` (it receives the agents' old log-probabilities and an
      `update(agent, factor)` callback that updates the agent and returns its new
      log-probabilities, and must compute each ratio itself, after the update, as a real pass
      does) — `check_sequential_factors`.
    - `rtol`, `atol`: the comparison's tolerance, entry by entry: `|got − expected| ≤ atol +
      rtol·|expected|` (for `check_trpo_step`, whose result is one vector, `rtol·max|expected|`).
      The defaults fit float64 code; float32 code needs about `rtol=1e-5, atol=1e-6`, and a
      failure whose errors are at float32 rounding says so.
    """

    arrays: Literal["numpy", "jax", "torch"] = "jax"
    layout: Literal["time_major", "batch_major", "single"] = "time_major"
    flags: Literal["done", "discount", "episode_start"] = "done"
    flag_dtype: Literal["float", "bool"] = "float"
    truncation: Literal["as_termination", "bootstrap"] = "as_termination"
    sign: Literal["objective", "loss"] = "objective"
    reduction: Literal["none", "mean"] = "none"
    advantages: Literal["raw", "normalised", "normalised_sample_std"] = "raw"
    dual_clip: float | None = None
    kl_inputs: Literal["probs", "logits", "log_probs"] = "probs"
    kl_direction: Literal["first_second", "second_first"] = "first_second"
    scale: Literal["std", "log_std"] = "log_std"
    kl_dimensions: Literal["summed", "per_dimension"] = "summed"
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    damping: float = 0.0
    sequential: Literal["ratios", "update"] = "ratios"
    rtol: float = 1e-9
    atol: float = 1e-9

    def __post_init__(self) -> None:
        allowed = {
            "arrays": ("numpy", "jax", "torch"),
            "layout": ("time_major", "batch_major", "single"),
            "flags": ("done", "discount", "episode_start"),
            "flag_dtype": ("float", "bool"),
            "truncation": ("as_termination", "bootstrap"),
            "sign": ("objective", "loss"),
            "reduction": ("none", "mean"),
            "advantages": ("raw", "normalised", "normalised_sample_std"),
            "kl_inputs": ("probs", "logits", "log_probs"),
            "kl_direction": ("first_second", "second_first"),
            "scale": ("std", "log_std"),
            "kl_dimensions": ("summed", "per_dimension"),
            "kl_estimator": ("k1", "k2", "k3"),
            "sequential": ("ratios", "update"),
        }
        for name, values in allowed.items():
            if getattr(self, name) not in values:
                raise UsageError(f"Conventions: `{name}` must be one of {values}, got {getattr(self, name)!r}.")
        if self.flags == "discount" and self.flag_dtype == "bool":
            raise UsageError("Conventions: `flag_dtype='bool'` needs 0/1 flags, not `flags='discount'` (γ(1 − d)).")
        if self.flags == "episode_start" and self.truncation == "bootstrap":
            raise UsageError(
                "Conventions: `flags='episode_start'` with `truncation='bootstrap'` is not a convention any "
                "library uses; declare `flags='done'` for separate terminations and truncations."
            )
        for name in ("rtol", "atol", "damping"):
            if not _is_real(getattr(self, name)) or getattr(self, name) < 0:
                raise UsageError(f"Conventions: `{name}` must be a finite number >= 0, got {getattr(self, name)!r}.")
        if self.dual_clip is not None and not (_is_real(self.dual_clip) and self.dual_clip > 1):
            raise UsageError(
                "Conventions: `dual_clip` must be None or a finite number > 1 (the dual clip's c), "
                f"got {self.dual_clip!r}."
            )


def _is_real(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))


# ------------------------------------------------------------------------------------------------
# The equations, written independently in numpy (plain loops, float64)
# ------------------------------------------------------------------------------------------------


def reference_gae(traj: Trajectory, truncation: str) -> np.ndarray:
    """GAE(γ, λ), time-major `[T, B]`, by the backward recursion.

    δ_t = r_t + γ(1 − term_t)·V_next,t − V(s_t),  Â_t = δ_t + γλ(1 − term_t)(1 − trunc_t)Â_{t+1},

    with V_next,t = V(final state) where the step was truncated, else V(s_{t+1}). Under
    `"as_termination"` a truncation counts as a termination (no bootstrap).
    """
    term, trunc = _ends(traj, truncation)
    T, B = traj.rewards.shape
    adv = np.zeros((T, B))
    for b in range(B):
        carry = 0.0
        for t in reversed(range(T)):
            v_next = traj.final_values[t, b] if trunc[t, b] else traj.values[t + 1, b]
            delta = traj.rewards[t, b] + traj.gamma * (1 - term[t, b]) * v_next - traj.values[t, b]
            carry = delta + traj.gamma * traj.lam * (1 - term[t, b]) * (1 - trunc[t, b]) * carry
            adv[t, b] = carry
    return adv


def reference_returns(traj: Trajectory, truncation: str) -> np.ndarray:
    """Discounted returns, time-major `[T, B]`, by the backward recursion.

    G_t = r_t + γ(1 − term_t)·G_next,t with G_next,t = V(final state) after a truncation,
    G_{t+1} otherwise, and G_T = V(s_T) (the bootstrap value, `values[T]`).
    """
    term, trunc = _ends(traj, truncation)
    T, B = traj.rewards.shape
    out = np.zeros((T, B))
    for b in range(B):
        g = traj.values[T, b]
        for t in reversed(range(T)):
            g_next = traj.final_values[t, b] if trunc[t, b] else g
            g = traj.rewards[t, b] + traj.gamma * (1 - term[t, b]) * g_next
            out[t, b] = g
    return out


def _ends(traj: Trajectory, truncation: str) -> tuple[np.ndarray, np.ndarray]:
    if truncation == "as_termination":
        return np.maximum(traj.terminations, traj.truncations), np.zeros_like(traj.truncations)
    return traj.terminations, traj.truncations


def reference_ppo_clip(
    ratio: np.ndarray, adv: np.ndarray, eps: float, dual_clip: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, PPO's clipped surrogate and its derivative in the ratio, by cases.

    The value is min(rA, clip(r, 1 − ε, 1 + ε)A); the derivative is A where the unclipped term is
    the minimum and 0 where the clipped one is. With a dual clip c, a sample with A < 0 whose value
    is below cA gets cA instead, and derivative 0 (Ye et al. 2020).
    """
    value = np.empty_like(ratio)
    grad = np.empty_like(ratio)
    for i, (r, a) in enumerate(zip(ratio, adv, strict=True)):
        clipped = min(max(r, 1 - eps), 1 + eps)
        if r * a <= clipped * a:
            value[i], grad[i] = r * a, a
        else:
            value[i], grad[i] = clipped * a, 0.0
        if dual_clip is not None and a < 0 and value[i] < dual_clip * a:
            value[i], grad[i] = dual_clip * a, 0.0
    return value, grad


def reference_categorical_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """D_KL(p‖q) = Σ_a p_a (log p_a − log q_a) per row (0·log 0 = 0)."""
    out = np.zeros(p.shape[:-1])
    for idx in np.ndindex(*p.shape[:-1]):
        out[idx] = sum(pa * (np.log(pa) - np.log(qa)) for pa, qa in zip(p[idx], q[idx], strict=True) if pa > 0)
    return out


def reference_gaussian_kl(mp: np.ndarray, sp: np.ndarray, mq: np.ndarray, sq: np.ndarray) -> np.ndarray:
    """D_KL(N(μ_p, diag σ_p²) ‖ N(μ_q, diag σ_q²)) = Σ_d [log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½]."""
    return np.sum(np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5, axis=-1)


def reference_natural_step(g: np.ndarray, H: np.ndarray, delta: float, damping: float = 0.0) -> np.ndarray:
    """The TRPO step √(2δ / gᵀF⁻¹g)·F⁻¹g with F = H + λI (λ = `damping`), by a dense solve."""
    F = H + damping * np.eye(len(g))
    x = np.linalg.solve(F, g)
    return np.sqrt(2 * delta / (g @ x)) * x


def reference_kl_estimate(log_prob: np.ndarray, old_log_prob: np.ndarray, estimator: str) -> np.ndarray:
    """A sampled estimate of D_KL(π_old‖π_new) at actions drawn from π_old, per sample.

    With log r = log π_new(a) − log π_old(a): k1 = −log r, k2 = ½(log r)², k3 = (r − 1) − log r
    (Schulman 2020, "Approximating KL divergence"). k1 and k3 are unbiased (their expectation under
    π_old is the KL; k3 is also never negative); k2's expectation agrees with the KL to second
    order in log r.
    """
    out = np.empty(np.shape(log_prob))
    for idx in np.ndindex(*out.shape):
        log_r = float(log_prob[idx]) - float(old_log_prob[idx])
        if estimator == "k1":
            out[idx] = -log_r
        elif estimator == "k2":
            out[idx] = 0.5 * log_r * log_r
        elif estimator == "k3":
            out[idx] = np.expm1(log_r) - log_r
        else:
            raise UsageError(f"`estimator` must be 'k1', 'k2' or 'k3', got {estimator!r}.")
    return out


# ------------------------------------------------------------------------------------------------
# Calling the user's function
# ------------------------------------------------------------------------------------------------


def _torch() -> Any:
    """PyTorch, imported only for `arrays="torch"` (it is not a dependency of `reference`)."""
    try:
        import torch
    except ImportError as e:
        raise ModuleNotFoundError(
            'Conventions(arrays="torch") needs PyTorch: `pip install torch` (a CPU build is enough).'
        ) from e
    return torch


def _jax() -> Any:
    """JAX, imported only for `arrays="jax"` (the numpy and PyTorch checks run without it)."""
    import jax

    return jax


def _to(arrays: str, x: Any) -> Any:
    if arrays == "jax":
        return _jax().numpy.asarray(x)
    if arrays == "torch":
        torch = _torch()
        if isinstance(x, torch.Tensor):
            return x.to(torch.float64)
        x = np.asarray(x)
        return torch.as_tensor(x, dtype=torch.bool if x.dtype == np.bool_ else torch.float64)
    return np.asarray(x)


def _to_numpy(out: Any) -> np.ndarray:
    if type(out).__module__.startswith("torch"):
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float64)


def _describe(args: tuple[Any, ...]) -> str:
    return ", ".join(f"array{list(a.shape)}" if isinstance(a, np.ndarray) else repr(a) for a in args)


def _check_signature(name: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A `UsageError` if `fn` cannot take `len(args)` positional arguments (when Python can tell)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or a C extension without a signature: try the call
        return
    try:
        signature.bind(*args)
    except TypeError as err:
        raise UsageError(
            f"{name}: the function cannot be called with the check's {len(args)} arguments "
            f"({_describe(args)}): {err}. Adapt its signature with a lambda (see the check's docstring)."
        ) from None


def _as_result(name: str, out: Any) -> np.ndarray:
    try:
        return _to_numpy(out)
    except (TypeError, ValueError) as err:
        raise UsageError(
            f"{name}: the function returned {type(out).__name__}, not an array of numbers ({err})."
        ) from None


def _call(name: str, fn: Callable[..., Any], conventions: Conventions, *args: Any, where: str = "") -> np.ndarray:
    """Call `fn` on copies of the arguments converted to the declared array type; return float64 numpy.

    Copies: a function that changes its inputs in place (stable-baselines3's buffer adds
    γ·V(final state) to its rewards) must not change the example the report prints. A call the
    function's signature cannot take, or a result that is not an array of numbers, is a
    `UsageError`; an exception the function raises is a finding, a `ConformanceError`.
    """
    args = tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)
    _check_signature(name, fn, args)
    try:
        if conventions.arrays == "jax":
            jax = _jax()
            with jax.enable_x64(True):
                out = fn(*[jax.numpy.asarray(a) if isinstance(a, np.ndarray) else a for a in args])
                return _as_result(name, out)
        if conventions.arrays == "torch":
            return _as_result(name, fn(*[_to("torch", a) if isinstance(a, np.ndarray) else a for a in args]))
        return _as_result(name, fn(*args))
    except (ConformanceError, UsageError):
        raise
    except Exception as e:  # the user's function failed: that is a finding, reported with its input
        hint = ""
        text = str(e).lower()
        flags = name in ("check_gae", "check_discounted_returns") and conventions.flag_dtype == "float"
        negated = any(word in text for word in ("invert", "bitwise", "not does not accept"))
        if flags and isinstance(e, TypeError) and negated:
            hint = " (a function that negates its flags with `~` takes booleans: declare `flag_dtype='bool'`)"
        raise ConformanceError(f"{name}: the function raised {type(e).__name__}: {e}{hint}{where}.") from e


def _ratio_gradient(fn: Callable[..., Any], c: Conventions, ratio: np.ndarray, *rest: Any) -> np.ndarray:
    """d/d(ratio) of sum(fn(ratio, *rest)), by JAX's or PyTorch's automatic differentiation."""
    if c.arrays == "jax":
        jax = _jax()
        with jax.enable_x64(True):
            rest_j = [jax.numpy.asarray(a) if isinstance(a, np.ndarray) else a for a in rest]
            return np.asarray(jax.grad(lambda r: jax.numpy.sum(fn(r, *rest_j)))(jax.numpy.asarray(ratio)))
    torch = _torch()
    r = torch.tensor(ratio, dtype=torch.float64, requires_grad=True)  # torch.tensor copies
    fn(r, *[_to("torch", np.array(a, copy=True)) if isinstance(a, np.ndarray) else a for a in rest]).sum().backward()
    if r.grad is None:  # the output does not depend on the ratio at all
        return np.zeros_like(ratio)
    return r.grad.detach().cpu().numpy()


FLOAT32_ROUNDING = 64 * float(np.finfo(np.float32).eps)
"""An error within this much of an entry (or of the batch's largest) is what float32 arithmetic makes."""


def _compare(
    name: str,
    equation: str,
    got: np.ndarray,
    expected: np.ndarray,
    c: Conventions,
    where: str = "",
    *,
    per_entry: bool = True,
) -> None:
    """Fail unless the result is the expected one within the declared tolerance.

    Entry by entry, `|got − expected| ≤ atol + rtol·|expected|` (`per_entry`), or `≤ atol +
    rtol·max|expected|` (a vector such as a TRPO step, whose small components are judged against
    its size). A failure at float32 rounding says so.
    """
    if got.shape != expected.shape:
        raise UsageError(f"{name}: returned shape {got.shape}, expected {expected.shape} ({equation}){where}.")
    largest = float(np.max(np.abs(expected))) if expected.size else 0.0
    scale = np.abs(expected) if per_entry else np.full(expected.shape, largest)
    err = np.abs(got - expected)
    bad = ~(err <= c.atol + c.rtol * scale)  # NaN in `got` is bad too
    if np.any(bad):
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        hint = ""
        if np.all(err[bad] <= FLOAT32_ROUNDING * np.maximum(np.abs(expected[bad]), largest)):
            relative = float(np.max(err[bad]) / max(largest, 1e-300))
            hint = (
                f"; the errors are at float32 rounding ({relative:.1e} of the largest entry): if the function "
                "computes in float32, declare it, e.g. `Conventions(rtol=1e-5, atol=1e-6)`"
            )
        raise ConformanceError(
            f"{name}: {equation} violated at index {i}: expected {expected[i]!r}, got {got[i]!r} "
            f"(tolerance {c.atol:g} + {c.rtol:g}·{float(scale[i]):.3g}){hint}{where}."
        )


def _run(strategy: st.SearchStrategy[Any], test: Callable[[Any], None], max_examples: int, seed: int | None) -> None:
    """Run `test` on `max_examples` examples of `strategy`.

    The same examples on every run for an int `seed` (the default 0); hypothesis chooses for `seed=None`.
    """
    if not (isinstance(max_examples, int) and not isinstance(max_examples, bool) and max_examples >= 1):
        raise UsageError(f"`max_examples` must be an int >= 1, got {max_examples!r}.")
    if not (seed is None or (isinstance(seed, int) and not isinstance(seed, bool))):
        raise UsageError(f"`seed` must be an int or None, got {seed!r}.")
    if currently_in_test_context():
        raise RuntimeError(
            "a conformance check was called inside a hypothesis @given test, which hypothesis refuses "
            "(nested @given); call it from a plain test, parametrised with pytest.mark.parametrize if "
            "it must vary (a check draws its own examples)."
        )

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        report_multiple_bugs=False,  # one ConformanceError, the simplest, not an exception group
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # no `explain` phase: after shrinking it calls the function ~100 more times to print which
        # source lines only failing examples ran, which the ConformanceError's message replaces
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )
    @given(strategy)
    def prop(x: Any) -> None:
        test(x)

    with _hypothesis_files_elsewhere():
        (prop if seed is None else hypothesis_seed(seed)(prop))()


@contextlib.contextmanager
def _hypothesis_files_elsewhere() -> Iterator[None]:
    """Keep the files hypothesis writes during a check out of the working directory.

    Hypothesis (>= 6.131) caches the constants it reads from the caller's own modules in
    `.hypothesis/constants/` under the working directory (the database is off already). For the
    check's duration its storage points at a temporary directory, removed afterwards, and is then
    set back to what it was, so the user's own hypothesis tests keep theirs. A directory the user
    chose with `HYPOTHESIS_STORAGE_DIRECTORY` is used as they asked.
    """
    from hypothesis import configuration

    set_home = getattr(configuration, "set_hypothesis_home_dir", None)
    if set_home is None or os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    previous = getattr(configuration, "__hypothesis_home_directory", None)
    with tempfile.TemporaryDirectory(prefix="reference-testing-hypothesis-") as where:
        set_home(where)
        try:
            yield
        finally:
            set_home(previous)


def _check_callable(fn: object, conventions: object, name: str) -> Conventions:
    if not callable(fn):
        raise TypeError(f"{name}: `fn` must be callable, got {type(fn).__name__}.")
    if not isinstance(conventions, Conventions):
        raise TypeError(f"{name}: `conventions` must be a `Conventions`, got {type(conventions).__name__}.")
    if conventions.arrays == "torch":
        _torch()  # a missing PyTorch is reported before any example is drawn
    return conventions


# ------------------------------------------------------------------------------------------------
# Time series: GAE and discounted returns
# ------------------------------------------------------------------------------------------------


def _shown(a: np.ndarray, c: Conventions) -> list:
    """A time-major array `[T, B]` (or `[T + 1, B]`) as the function saw it.

    Transposed to `[B, T]` for `layout="batch_major"`, and for `"single"` one row per environment
    (each row one call).
    """
    return (a if c.layout == "time_major" else a.T).tolist()


def _layout_note(c: Conventions) -> str:
    return {
        "time_major": " (time-major [T, B])",
        "batch_major": " (batch-major [B, T])",
        "single": " (one row per environment [B, T]: the function was called once per row)",
    }[c.layout]


def _in_layout(a: np.ndarray, c: Conventions) -> np.ndarray:
    """A time-major result in the declared layout, so that a reported index is the function's own."""
    return a if c.layout == "time_major" or a.ndim != 2 else a.T


def _time_series_args(traj: Trajectory, c: Conventions) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """The per-step arrays handed to the callable (time-major), the per-environment ones, and their description.

    They follow the declared flags, their dtype and the truncation.
    """
    term, trunc = _ends(traj, c.truncation)
    per_env: list[np.ndarray] = []
    if c.flags == "discount":
        term = traj.gamma * (1 - term)
    elif c.flags == "episode_start":
        previous = (traj.rewards[:1] > 0).astype(term.dtype)  # the previous rollout's: must not matter
        per_env = [term[-1]]
        term = np.concatenate([previous, term[:-1]])
    if c.flag_dtype == "bool":
        term, trunc, per_env = term.astype(bool), trunc.astype(bool), [a.astype(bool) for a in per_env]
    if c.truncation == "bootstrap":
        arrays, names = [term, trunc, traj.final_values], ["terminations", "truncations", "final_values"]
    else:
        arrays, names = [term], [{"done": "dones", "discount": "discounts", "episode_start": "episode_starts"}[c.flags]]
    if c.flags == "discount" and c.truncation == "bootstrap":
        names[0] = "discounts"
    described = [f"{n}={_shown(a, c)}" for n, a in zip(names, arrays, strict=True)]
    described += [f"last_episode_starts={a.tolist()}" for a in per_env]
    return arrays, per_env, ", ".join(described)


def _layout_call(
    name: str,
    fn: Callable[..., Any],
    c: Conventions,
    per_step: list[np.ndarray],
    per_env: list[np.ndarray],
    scalars: list[Any],
    T: int,
    where: str,
) -> np.ndarray:
    """Call `fn(*per_step, *per_env, *scalars)` laid out as declared; return `[T, B]`.

    `per_step` arrays are time-major (`[T, B]` or `[T + 1, B]`), transposed for `batch_major`;
    `per_env` arrays are `[B]`; under `single` the callable is called once per environment `b`
    with column `b` of each `per_step` array and entry `b` of each `per_env` array.
    """
    if c.layout == "time_major":
        return _call(name, fn, c, *per_step, *per_env, *scalars, where=where)
    if c.layout == "batch_major":
        out = _call(name, fn, c, *[np.ascontiguousarray(a.T) for a in per_step], *per_env, *scalars, where=where)
        return out.T if out.ndim == 2 else out
    B = per_step[0].shape[1]
    cols = [
        _call(
            name,
            fn,
            c,
            *[np.ascontiguousarray(a[:, b]) for a in per_step],
            *[a[b] for a in per_env],
            *scalars,
            where=where,
        )
        for b in range(B)
    ]
    return np.stack(cols, axis=-1) if all(col.shape == (T,) for col in cols) else np.asarray(cols[0])


def check_gae(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check a GAE implementation on random trajectories with episode ends and truncations.

    Equation: $\hat A_t = \delta_t + \gamma\lambda(1-d_t)\hat A_{t+1}$ with
    $\delta_t = r_t + \gamma(1-d_t)V(s_{t+1}) - V(s_t)$; with `truncation="bootstrap"` a
    truncated step bootstraps with $V$ of the state it reached and cuts the recursion. Schulman et
    al. (2016) eq. (16); notes A31.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(rewards, values, dones, gamma, lam)` with `rewards`, `dones` `[T, B]` and
    `values` `[T + 1, B]` (time-major; `[B, T]`/`[B, T + 1]` batch-major; `[T]`/`[T + 1]` single);
    `dones` are discounts $\gamma(1-d_t)$ under `flags="discount"`. Under `truncation="bootstrap"`:
    `fn(rewards, values, terminations, truncations, final_values, gamma, lam)`. Under
    `flags="episode_start"`: `fn(rewards, values, episode_starts, last_episode_starts, gamma,
    lam)`. Returns the advantages, the shape of `rewards`. Adapt other signatures with a lambda.

    **Raises:** `ConformanceError` with the shrunk counterexample.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_gae")

    def test(traj: Trajectory) -> None:
        expected = reference_gae(traj, c.truncation)
        per_step, per_env, names = _time_series_args(traj, c)
        where = (  # from the example as drawn, before the function sees (copies of) it
            f" for rewards={_shown(traj.rewards, c)}, values={_shown(traj.values, c)}, {names}, "
            f"gamma={traj.gamma!r}, lam={traj.lam!r}{_layout_note(c)}"
        )
        arrays = [traj.rewards, traj.values, *per_step]
        got = _layout_call("check_gae", fn, c, arrays, per_env, [traj.gamma, traj.lam], len(traj.rewards), where)
        equation = "Â_t = δ_t + γλ(1 − d_t)Â_{t+1}, δ_t = r_t + γ(1 − d_t)V_{t+1} − V_t"
        if c.truncation == "bootstrap":
            equation += " (V_{t+1} = V(final state) and no carry after a truncation)"
        _compare("check_gae", equation, _in_layout(got, c), _in_layout(expected, c), c, where)

    _run(trajectories(truncations=True), test, max_examples, seed)


def check_discounted_returns(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check discounted returns with episode ends and a bootstrap value.

    Equation: $G_t = r_t + \gamma(1-d_t)G_{t+1}$, $G_T = V(s_T)$ (the bootstrap value); with
    `truncation="bootstrap"` a truncated step continues with $V$ of the state it reached. Sutton &
    Barto (2018) eq. (3.9); notes A3.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(rewards, dones, bootstrap_value, gamma)` with `rewards`, `dones` `[T, B]`
    (laid out as declared) and `bootstrap_value` `[B]` (a scalar under `layout="single"`); under
    `truncation="bootstrap"`: `fn(rewards, terminations, truncations, final_values,
    bootstrap_value, gamma)`; under `flags="episode_start"`: `fn(rewards, episode_starts,
    last_episode_starts, bootstrap_value, gamma)`. Returns the returns, the shape of `rewards`.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_discounted_returns")

    def test(traj: Trajectory) -> None:
        expected = reference_returns(traj, c.truncation)
        per_step, per_env, names = _time_series_args(traj, c)
        T = len(traj.rewards)
        boot = traj.values[T]
        where = (  # from the example as drawn, before the function sees (copies of) it
            f" for rewards={_shown(traj.rewards, c)}, {names}, bootstrap_value={boot.tolist()}, "
            f"gamma={traj.gamma!r}{_layout_note(c)}"
        )
        arrays = [traj.rewards, *per_step]
        got = _layout_call("check_discounted_returns", fn, c, arrays, [*per_env, boot], [traj.gamma], T, where)
        equation = "G_t = r_t + γ(1 − d_t)G_{t+1}, G_T = V(s_T)"
        _compare("check_discounted_returns", equation, _in_layout(got, c), _in_layout(expected, c), c, where)

    _run(trajectories(truncations=True), test, max_examples, seed)


# ------------------------------------------------------------------------------------------------
# PPO's clipped objective and its gradient
# ------------------------------------------------------------------------------------------------


@st.composite
def _ppo_inputs(draw: Draw, min_batch: int = 1, factors: bool = False) -> tuple:
    B = draw(st.integers(min_batch, 16))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    eps = draw(st.sampled_from([0.1, 0.2, 0.3]))
    spread = draw(st.sampled_from([0.05, 0.5, 2.0]))
    ratio = np.exp(rng.normal(0.0, spread, B))
    adv = rng.normal(0.0, 1.0, B) * (rng.random(B) < 0.9)
    if not factors:
        return ratio, adv, np.float64(eps)
    # the earlier agents' product of ratios: positive, near 1 or far from it
    factor = np.exp(rng.normal(0.0, draw(st.sampled_from([0.05, 0.5, 1.5])), B))
    return ratio, factor, adv, np.float64(eps)


def _standardise(raw: np.ndarray, c: Conventions) -> np.ndarray:
    if c.advantages == "raw":
        return raw
    ddof = 1 if c.advantages == "normalised_sample_std" else 0
    return (raw - raw.mean()) / (raw.std(ddof=ddof) + 1e-8)


def _check_clipped(
    name: str,
    equation: str,
    fn: Callable[..., Any],
    c: Conventions,
    ratio: np.ndarray,
    multiplier: np.ndarray,
    args: tuple[Any, ...],
    eps: float,
    where: str,
) -> None:
    """Compare fn(ratio, *args) with min(r·M, clip(r)·M) (value, then the ratio-gradient)."""
    flip = -1.0 if c.sign == "loss" else 1.0
    value, grad = reference_ppo_clip(ratio, multiplier, eps, c.dual_clip)
    expected = np.asarray(flip * (value if c.reduction == "none" else np.mean(value)))
    got = _call(name, fn, c, ratio, *args, where=where)
    _compare(name, equation, got, expected, c, where)
    if c.arrays == "numpy":
        return
    kinks = [1 - eps, 1 + eps] + ([c.dual_clip] if c.dual_clip is not None else [])
    away = np.all([np.abs(ratio - k) > 1e-6 for k in kinks], axis=0)
    try:
        g = _ratio_gradient(fn, c, ratio, *args)
    except Exception as e:
        raise ConformanceError(f"{name}: the function could not be differentiated: {e}{where}") from e
    expected_grad = flip * (grad if c.reduction == "none" else grad / len(ratio))
    _compare(
        name,
        "∂f/∂r = M where rM is the minimum, 0 where the clipped term is"
        + (" (or the dual clip's cM)" if c.dual_clip is not None else ""),
        np.where(away, g, 0.0),
        np.where(away, expected_grad, 0.0),
        c,
        where,
    )


def _dual(c: Conventions, m: str) -> str:
    return "" if c.dual_clip is None else f", and max(f, {c.dual_clip:g}{m}) where {m} < 0 (dual clip)"


def check_ppo_clip(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check PPO's clipped surrogate and (for JAX and PyTorch callables) its gradient in the ratio.

    Equation: $f(r, A) = \min(rA, \mathrm{clip}(r, 1-\epsilon, 1+\epsilon)A)$ (with $A$ standardised
    over the batch under `advantages="normalised"` or `"normalised_sample_std"`), and
    $\partial f/\partial r = A$ where $rA$ is the minimum, $0$ where the clipped term is
    (the gradient is compared away from the kinks $r = 1 \pm \epsilon$). Schulman et al. (2017)
    eq. (7); notes A29. Under `dual_clip=c`: $\max(f, cA)$ where $A < 0$ (Ye et al. 2020), with
    derivative 0 where $cA$ is taken.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(ratio, advantage, epsilon)` with `ratio`, `advantage` `[B]`; returns the
    per-sample objective `[B]` (`reduction="none"`) or its mean (`"mean"`), negated under
    `sign="loss"`.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_ppo_clip")

    def test(x: tuple[np.ndarray, np.ndarray, np.float64]) -> None:
        ratio, raw, eps = x
        where = f" for ratio={ratio.tolist()}, advantage={raw.tolist()}, epsilon={float(eps)!r}"
        equation = "f = min(rA, clip(r, 1 − ε, 1 + ε)A)" + _dual(c, "A")
        _check_clipped(
            "check_ppo_clip", equation, fn, c, ratio, _standardise(raw, c), (raw, float(eps)), float(eps), where
        )

    _run(_ppo_inputs(min_batch=2 if c.advantages == "normalised_sample_std" else 1), test, max_examples, seed)


def check_happo_objective(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check HAPPO's clipped objective for one agent, and its gradient in that agent's ratio.

    Equation: $f = \min(r M, \mathrm{clip}(r, 1-\epsilon, 1+\epsilon) M)$ with
    $M = \hat A\prod_{j<m} r^{i_j}$: the advantage (standardised as declared) times the factor of the
    agents updated before — the factor multiplies the advantage *inside* the min, and only the
    agent's own ratio is clipped (so $\mathrm{clip}(r\cdot\prod)$ is wrong). Since the factor is
    positive, $\prod\cdot\min(rA, \mathrm{clip}(r)A)$ is the same number. Kuba et al. (2022)
    eq. (11); notes A51.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(ratio, factor, advantage, epsilon)` with `ratio` (this agent's new/old ratio),
    `factor` (the product of the earlier agents' ratios, positive) and `advantage`, each `[B]`;
    returns `[B]` or the mean, negated under `sign="loss"`.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_happo_objective")

    def test(x: tuple[np.ndarray, np.ndarray, np.ndarray, np.float64]) -> None:
        ratio, factor, raw, eps = x
        where = (
            f" for ratio={ratio.tolist()}, factor={factor.tolist()}, advantage={raw.tolist()}, epsilon={float(eps)!r}"
        )
        equation = "f = min(rM, clip(r, 1 − ε, 1 + ε)M)" + _dual(c, "M") + ", M = factor·A"
        M = factor * _standardise(raw, c)
        _check_clipped("check_happo_objective", equation, fn, c, ratio, M, (factor, raw, float(eps)), float(eps), where)

    _run(
        _ppo_inputs(min_batch=2 if c.advantages == "normalised_sample_std" else 1, factors=True),
        test,
        max_examples,
        seed,
    )


# ------------------------------------------------------------------------------------------------
# KL divergences
# ------------------------------------------------------------------------------------------------


@st.composite
def _categorical_pairs(draw: Draw) -> tuple[np.ndarray, np.ndarray]:
    B, A = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.01, 0.5, 3.0, 8.0]))  # near-uniform to near the simplex's edges
    logits_p = rng.normal(0, scale, (B, A))
    logits_q = logits_p + rng.normal(0, draw(st.sampled_from([0.01, 0.5, 3.0])), (B, A))
    softmax = lambda z: (
        np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
    )
    return softmax(logits_p), softmax(logits_q)


def check_categorical_kl(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check a KL divergence between categorical distributions, row by row.

    Equation: $D_{KL}(p\|q) = \sum_a p_a\log(p_a/q_a)$ for `kl_direction="first_second"`
    ($D_{KL}(q\|p)$ for `"second_first"`). Kullback & Leibler (1951); notes A23.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(p, q)` with `p`, `q` `[B, A]` as probabilities, logits or
    log-probabilities (`kl_inputs`); returns `[B]`.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_categorical_kl")

    def test(x: tuple[np.ndarray, np.ndarray]) -> None:
        p, q = x
        expected = (
            reference_categorical_kl(p, q) if c.kl_direction == "first_second" else reference_categorical_kl(q, p)
        )
        if c.kl_inputs == "probs":
            args = (p, q)
        else:  # log-probabilities are logits too (softmax is shift-invariant)
            args = (np.log(p), np.log(q))
        where = f" for p={p.tolist()}, q={q.tolist()} (given as {c.kl_inputs})"
        got = _call("check_categorical_kl", fn, c, *args, where=where)
        equation = "D_KL(p‖q) = Σ_a p_a log(p_a/q_a)" if c.kl_direction == "first_second" else "D_KL(q‖p)"
        _compare("check_categorical_kl", equation, got, expected, c, where)

    _run(_categorical_pairs(), test, max_examples, seed)


@st.composite
def _gaussian_pairs(draw: Draw) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    B, D = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([0.01, 0.5, 2.0]))
    mp = rng.normal(0, 1, (B, D))
    mq = mp + rng.normal(0, spread, (B, D))
    sp = np.exp(rng.normal(0, 1, (B, D)))
    sq = sp * np.exp(rng.normal(0, spread, (B, D)))
    return mp, sp, mq, sq


def check_gaussian_kl(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check a KL divergence between diagonal Gaussians.

    Equation: $D_{KL}(p\|q) = \sum_d \log\frac{\sigma_{q,d}}{\sigma_{p,d}} +
    \frac{\sigma_{p,d}^2 + (\mu_{p,d}-\mu_{q,d})^2}{2\sigma_{q,d}^2} - \frac12$
    (`kl_direction="first_second"`; the reverse for `"second_first"`), the sum over dimensions
    of the univariate closed form (Kullback 1959).

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(mean_p, scale_p, mean_q, scale_q)`, each `[B, D]`, scales as standard
    deviations or their logs (`scale`); returns `[B]`, or each dimension's term `[B, D]` under
    `kl_dimensions="per_dimension"`.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_gaussian_kl")

    def test(x: tuple[np.ndarray, ...]) -> None:
        mp, sp, mq, sq = x
        first, second = ((mp, sp), (mq, sq)) if c.kl_direction == "first_second" else ((mq, sq), (mp, sp))
        if c.kl_dimensions == "summed":
            expected = reference_gaussian_kl(*first, *second)
        else:  # each dimension is a univariate Gaussian: the same closed form, one column at a time
            columns = [reference_gaussian_kl(*(x[:, d : d + 1] for x in (*first, *second))) for d in range(mp.shape[1])]
            expected = np.stack(columns, axis=-1)
        tr = np.log if c.scale == "log_std" else (lambda s: s)
        if c.scale == "log_std":  # the scales as the function received them
            where = (
                f" for mean_p={mp.tolist()}, log_std_p={np.log(sp).tolist()}, mean_q={mq.tolist()}, "
                f"log_std_q={np.log(sq).tolist()}"
            )
        else:
            where = f" for mean_p={mp.tolist()}, std_p={sp.tolist()}, mean_q={mq.tolist()}, std_q={sq.tolist()}"
        got = _call("check_gaussian_kl", fn, c, mp, tr(sp), mq, tr(sq), where=where)
        if c.kl_dimensions == "summed" and got.shape == mp.shape != expected.shape:
            raise UsageError(
                f"check_gaussian_kl: returned shape {got.shape}, one KL per dimension, where the sum over "
                f"dimensions {expected.shape} was declared: declare `kl_dimensions='per_dimension'`{where}."
            )
        equation = "D_KL(p‖q) = Σ_d log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½"
        if c.kl_dimensions == "per_dimension":
            equation = "D_KL(p_d‖q_d) = log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½ for each dimension d"
        _compare("check_gaussian_kl", equation, got, expected, c, where)

    _run(_gaussian_pairs(), test, max_examples, seed)


def check_sampled_kl(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check a sampled estimate of $D_{KL}(\pi_{old}\|\pi_{new})$ (PPO's `approx_kl`).

    Equation, per sample with $\log r = \log\pi_{new}(a) - \log\pi_{old}(a)$ (`kl_estimator`):
    k1 $= -\log r$, k2 $= \tfrac12(\log r)^2$, k3 $= (r - 1) - \log r$ (Schulman 2020,
    "Approximating KL divergence"). Under actions drawn from $\pi_{old}$, k1 and k3 are unbiased:
    $\sum_a \pi_{old}(a)\,k(a) = D_{KL}(\pi_{old}\|\pi_{new})$ exactly; k2 agrees to second order.
    A batch here holds every action of a few categorical pairs, so the check also reports, under
    `reduction="none"` and for k1 and k3, a function whose $\pi_{old}$-weighted mean is not the
    exact KL. Summing k3 over all actions unweighted (HARL's discrete `kl_approx`) is not an
    estimate of this KL: see `check_categorical_kl`.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(log_prob, old_log_prob)`, each `[N]` (the new and the old policy's
    log-probabilities of the sampled actions); returns the estimates `[N]` (`reduction="none"`)
    or their mean (`"mean"`).
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_sampled_kl")
    name = "check_sampled_kl"
    formula = {"k1": "−log r", "k2": "½(log r)²", "k3": "(r − 1) − log r"}[c.kl_estimator]

    def test(x: tuple[np.ndarray, np.ndarray]) -> None:
        p, q = x  # old, new: every action of every row is one sample
        old, new = np.log(p).reshape(-1), np.log(q).reshape(-1)
        where = f" for log_prob={new.tolist()}, old_log_prob={old.tolist()}"
        per_sample = reference_kl_estimate(new, old, c.kl_estimator)
        expected = per_sample if c.reduction == "none" else np.asarray(np.mean(per_sample))
        got = _call(name, fn, c, new, old, where=where)
        _compare(name, f"{c.kl_estimator} = {formula}, log r = log_prob − old_log_prob", got, expected, c, where)
        if c.reduction == "none" and c.kl_estimator in ("k1", "k3"):
            weighted = np.sum(p * got.reshape(p.shape), axis=-1)
            equation = f"Σ_a π_old(a)·{c.kl_estimator}(a) = D_KL(π_old‖π_new) (unbiased)"
            _compare(name, equation, weighted, reference_categorical_kl(p, q), c, where)

    _run(_categorical_pairs(), test, max_examples, seed)


# ------------------------------------------------------------------------------------------------
# The natural-gradient (TRPO) step and the HAPPO factor
# ------------------------------------------------------------------------------------------------


@st.composite
def _step_inputs(draw: Draw) -> tuple[np.ndarray, np.ndarray, float]:
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.exp(rng.uniform(np.log(0.1), np.log(10.0), n))  # condition number ≤ 100
    H = (Q * eig) @ Q.T
    H = (H + H.T) / 2
    g = rng.normal(size=n)
    delta = draw(st.sampled_from([1e-3, 1e-2, 0.1]))
    return g, H, delta


def check_trpo_step(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 100, *, seed: int | None = 0
) -> None:
    r"""Check a natural-gradient (TRPO) step: direction $H^{-1}g$ and scale $\sqrt{2\delta/g^\top H^{-1}g}$.

    Equation: $d^* = \sqrt{2\delta/(g^\top H^{-1}g)}\,H^{-1}g$, the maximiser of $g^\top d$ on
    $\frac12 d^\top Hd \le \delta$. Problems have $n \le 6$ parameters and a Fisher of condition
    number $\le 100$, so an iterative solver with $n$ or more steps converges; set `rtol` to what
    yours reaches. Schulman et al. (2015) App. C; notes A49.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(g, fisher_vector_product, delta)` with `g` `[n]`, `fisher_vector_product`
    a function `v -> Hv` (taking and returning the declared array type), `delta` a float;
    returns the step `[n]`. Under `damping=λ` the function adds $\lambda v$ to the products itself,
    and the expected step is the natural step of $H + \lambda I$ (direction and scale).
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_trpo_step")

    def test(x: tuple[np.ndarray, np.ndarray, float]) -> None:
        g, H, delta = x
        expected = reference_natural_step(g, H, delta, c.damping)
        where = f" for g={g.tolist()}, H={H.tolist()}, delta={delta!r}"
        equation = "d = √(2δ / gᵀH⁻¹g)·H⁻¹g" if c.damping == 0 else f"d = √(2δ / gᵀF⁻¹g)·F⁻¹g, F = H + {c.damping:g}I"
        # converted at each call, inside the call's float64 context (`jax.enable_x64`)
        got = _call("check_trpo_step", fn, c, g, lambda v: _to(c.arrays, H) @ _to(c.arrays, v), delta, where=where)
        _compare("check_trpo_step", equation, got, expected, c, where, per_entry=False)

    _run(_step_inputs(), test, max_examples, seed)


@st.composite
def _factor_inputs(draw: Draw) -> tuple[np.ndarray, np.ndarray]:
    B, m = draw(st.integers(1, 8)), draw(st.integers(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return np.exp(rng.normal(0, 0.3, (B, m))), rng.normal(0, 1, B)


def check_happo_factor(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check HAPPO's factor $M^{i_{1:m}} = \hat A\prod_{j<m} r^{i_j}$.

    The factor is the advantage times the new/old ratios of the agents already updated in this
    iteration. Kuba et al. (2022) eq. (11); notes A51.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(ratios, advantages)` with `ratios` `[B, m]` (the earlier agents' ratios,
    in update order; `m = 0` for the first agent) and `advantages` `[B]`; returns `[B]`.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_happo_factor")

    def test(x: tuple[np.ndarray, np.ndarray]) -> None:
        ratios, adv = x
        expected = adv.copy()
        for j in range(ratios.shape[1]):
            expected = expected * ratios[:, j]
        where = f" for ratios={ratios.tolist()}, advantages={adv.tolist()}"
        got = _call("check_happo_factor", fn, c, ratios, adv, where=where)
        _compare("check_happo_factor", "M = Â·Π_{j<m} r^{i_j}", got, expected, c, where)

    _run(_factor_inputs(), test, max_examples, seed)


@st.composite
def _sequential_inputs(draw: Draw) -> tuple[Any, np.ndarray, np.ndarray]:  # (order, ratios, advantages)
    n, B = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    order = draw(agent_orders(n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return order, np.exp(rng.normal(0, 0.3, (B, n))), rng.normal(0, 1, B)


def _check_update_pass(
    fn: Callable[..., Any],
    c: Conventions,
    order: tuple[int, ...],
    ratios: np.ndarray,
    adv: np.ndarray,
    expected: np.ndarray,
) -> None:
    """`check_sequential_factors` under `sequential="update"`: run the pass, record what each update got."""
    name = "check_sequential_factors"
    old = np.log(np.linspace(0.2, 0.8, ratios.size).reshape(ratios.shape))  # log π_old of the actions taken
    new = old + np.log(ratios)
    calls: list[tuple[int, np.ndarray]] = []

    def update(agent: Any, factor: Any) -> Any:
        calls.append((int(agent), _to_numpy(factor).copy()))
        return _to(c.arrays, new[:, int(agent)].copy())

    where = f" for order={order}, old_log_probs={old.tolist()}, new_log_probs={new.tolist()}, advantages={adv.tolist()}"
    _call(name, fn, c, order, old, adv, update, where=where)
    agents = tuple(a for a, _ in calls)
    if agents != tuple(order):
        called = f"each agent updated once, in the order: violated: expected `update` calls for {order}, got {agents}"
        raise ConformanceError(f"{name}: {called}{where}.")
    got = np.stack([f for _, f in calls]) if calls else np.empty((0, len(adv)))
    equation = "the factor handed to update(order[m]) = Â·Π_{j<m} exp(new_j − old_j), new_j returned by update(j)"
    _compare(name, equation, got, expected, c, where)


def check_sequential_factors(
    fn: Callable[..., Any], conventions: Conventions | None = None, max_examples: int = 200, *, seed: int | None = 0
) -> None:
    r"""Check the factors a sequential HAPPO/HATRPO pass hands its agents, in a given order.

    Equation: the agent updated $m$-th, $i_m$ = `order[m]`, sees
    $M^{i_{1:m}} = \hat A\prod_{j<m} r^{i_j}$ — the ratios of the agents updated BEFORE it in
    this order (not of the agents with smaller indices, not of all others). Kuba et al. (2022)
    App. D; notes §D.

    Proved in `proofs_as_tests/test_testing.py` (the reference against an independent computation;
    correct implementations pass; broken ones are caught).

    **The call:** `fn(order, ratios, advantages)` with `order` a tuple of the agent indices in
    update order, `ratios` `[B, n]` (column `i`: agent `i`'s new/old ratio after its update) and
    `advantages` `[B]`; returns `[n, B]`, row `m` the factor agent `order[m]` was given.

    Under `sequential="update"`: `fn(order, old_log_probs, advantages, update)` with
    `old_log_probs` `[B, n]` (column `i`: $\log\pi^i_{\theta_k}$ of agent `i`'s actions) and
    `update(agent, factor) -> new_log_probs [B]`, which stands for agent `agent`'s update on the
    factor it is handed (the check records the factor) and returns its log-probabilities under the
    updated policy. The pass must call `update` once per agent in `order` (eagerly: a Python loop,
    not inside `jax.jit`) and form each ratio from what `update` returned; the return value is
    ignored. This catches a factor computed from an earlier agent's old policy, which handing the
    ratios cannot.
    """
    c = _check_callable(fn, conventions if conventions is not None else Conventions(), "check_sequential_factors")

    def test(x: tuple[tuple[int, ...], np.ndarray, np.ndarray]) -> None:
        order, ratios, adv = x
        expected = np.empty((len(order), len(adv)))
        M = adv.copy()
        for m, agent in enumerate(order):
            expected[m] = M
            M = M * ratios[:, agent]
        if c.sequential == "update":
            _check_update_pass(fn, c, order, ratios, adv, expected)
            return
        where = f" for order={order}, ratios={ratios.tolist()}, advantages={adv.tolist()}"
        got = _call("check_sequential_factors", fn, c, order, ratios, adv, where=where)
        _compare("check_sequential_factors", "row m = Â·Π_{j<m} r^{order[j]}", got, expected, c, where)

    _run(_sequential_inputs(), test, max_examples, seed)

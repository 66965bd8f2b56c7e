"""What every test of the repository shares: the proofs' and the doctests'.

- Doctests of `reference` (the docstrings' Examples) run as a user runs them: with JAX's standard
  dtype promotion, not the strict promotion the proofs switch on (optax's Adam mixes int32 step
  counts with floats).
- Compiled programs are released when they are no longer needed. Every program XLA compiles for
  the CPU holds ~40 memory mappings (its code and constants) for as long as JAX caches it, and the
  proofs compile a new program for nearly every shape they draw: run in one process
  (`python -m pytest`) the suite reached the kernel's limit of 65,530 mappings per process
  (`vm.max_map_count`) at ~90% and crashed inside XLA (SIGSEGV/SIGABRT). JAX's caches are cleared
  after any test that leaves more than half the limit in use (not after every module: proofs of
  different modules share compiled kernels, and recompiling them cost more than a minute of the
  quick profile); a test that leaves more than 80% in use fails, naming itself, so a leak is caught by name
  instead of by a crash. `REFERENCE_TEST_MAP_LIMIT` overrides the limit (to show the guard fail).
"""

import gc
import os
import pathlib

# BLAS threads: one per process. XLA:CPU may run two LAPACK custom calls at once on its own thread
# pool (e.g. both branches of a vmapped solver fallback); OpenBLAS's own threads on top of that
# were the suspect of a hang seen once in a thorough run. A BLAS library loaded later (scipy's)
# reads the variable; one already loaded (numpy's) is limited through threadpoolctl.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The quick profile (the default; not `HYPOTHESIS_PROFILE=ci`) asks XLA:CPU for its cheaper code
# generation: the proofs compile a new program for nearly every shape they draw, and compiling,
# not running, is most of their time (measured: 30-50% less per compilation). LLVM's optimisation
# level changes how fast the code runs, not what it computes (no fast-math: IEEE arithmetic either
# way). The thorough profile, which CI runs, compiles exactly as a user's program is compiled.
# Set before JAX starts its backend; flags the user set come first and are kept.
if os.environ.get("HYPOTHESIS_PROFILE", "dev") == "dev":
    quick = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {quick}".strip()

import shutil
import tempfile

import jax
import pytest

# One compilation per program for the whole run: JAX's persistent compilation cache, in a directory
# made for this run and removed at its end (nothing is kept between runs, so a run's time does not
# depend on the ones before it). The two processes of `pytest -n 2` share it (they compile many of
# the same programs), and a program compiled again after its release below is read back instead
# (measured: the quick profile 6 min 8 s -> 5 min 5 s on 2 cores). The cached code is the code XLA
# compiled; nothing about what runs changes. A cache directory the user configured is kept.
CACHE_VARIABLE = "REFERENCE_PROOFS_XLA_CACHE"  # set by the first process, inherited by pytest-xdist's workers
OWN_CACHE = CACHE_VARIABLE not in os.environ and not os.environ.get("JAX_COMPILATION_CACHE_DIR")
if OWN_CACHE:
    os.environ[CACHE_VARIABLE] = tempfile.mkdtemp(prefix="reference-proofs-xla-")
if os.environ.get(CACHE_VARIABLE) and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.environ[CACHE_VARIABLE])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # every program, not only slow ones
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # and however small


def pytest_unconfigure(config):
    """Remove the run's compilation cache (in the process that made it)."""
    if OWN_CACHE:
        shutil.rmtree(os.environ.pop(CACHE_VARIABLE), ignore_errors=True)


try:  # in the test extra; absent where only the wheel's doctests run
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    pass
else:
    threadpool_limits(1)


def _map_limit() -> int | None:
    """The kernel's limit on one process's memory mappings (None where there is no such file)."""
    if "REFERENCE_TEST_MAP_LIMIT" in os.environ:
        return int(os.environ["REFERENCE_TEST_MAP_LIMIT"])
    try:
        return int(pathlib.Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):  # pragma: no cover - not Linux
        return None


MAP_LIMIT = _map_limit()


def memory_mappings() -> int:
    """How many memory mappings this process holds (lines of /proc/self/maps)."""
    with open("/proc/self/maps", "rb") as maps:
        return sum(1 for _ in maps)


def release_compiled_programs() -> None:
    """Drop JAX's caches of traced and compiled programs; XLA then unmaps their executables."""
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True)
def _memory_mappings_stay_under_the_kernel_limit(request):
    yield
    if MAP_LIMIT is None:  # pragma: no cover - not Linux
        return
    used = memory_mappings()
    if used > MAP_LIMIT // 2:
        release_compiled_programs()
        if used > MAP_LIMIT * 4 // 5:
            pytest.fail(
                f"{request.node.nodeid} left {used:,} memory mappings in use, over 80% of the kernel's limit of "
                f"{MAP_LIMIT:,} per process (vm.max_map_count; ~40 per compiled program): one more compilation "
                "could crash XLA. Compile fewer distinct programs in this test or release them.",
                pytrace=False,
            )


@pytest.fixture(autouse=True)
def _standard_promotion_in_doctests(request):
    if type(request.node).__name__ == "DoctestItem":
        _quiet_jaxmarl_import()
        with jax.numpy_dtype_promotion("standard"):
            yield
    else:
        yield


def _quiet_jaxmarl_import() -> None:
    """Import JaxMARL with its two lines of output dropped (a no-op without the `marl` extra).

    JaxMARL prints them when first imported; a doctest that imports it would read them as its output.
    """
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            import jaxmarl  # noqa: F401
        except ImportError:
            pass

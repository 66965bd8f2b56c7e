"""Notes §4 in practice: end-to-end MAPPO, HAPPO and HATRPO training (`make_train`).

Short runs with fixed seeds on Proposition 1's game (exact optimum known) and on JaxMARL's
cooperative navigation (the `marl` extra)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import reference as rf
from proofs_as_tests.strategies import at_most
from reference import training
from reference.testing import reference_gae, trajectories

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
standard_promotion = jax.numpy_dtype_promotion("standard")  # optax's Adam mixes int32 counts with floats


def game_trainer(algorithm: str, n: int = 4, total_steps: int = 512 * 30, **overrides) -> training.Trainer:
    env = training.cooperative_game_env(rf.parameter_sharing_game(n), episode_length=1)
    cfg = training.MARLConfig(algorithm=algorithm, total_steps=total_steps, num_envs=64, num_steps=8, **overrides)
    return training.make_train(cfg, env)


@at_most(25)
@pytest.mark.parametrize("truncation", ["bootstrap", "as_termination"])
@given(traj=trajectories(truncations=True, max_gamma=0.99))
def test_trainer_advantages_and_critic_targets(truncation, traj):
    """A31 in training: the advantages a `Trainer` computes from a rollout are GAE with the
    config's γ and λ (in that order), episode ends cutting both the bootstrap and the carry, a
    truncated step bootstrapping from V of the state it reached (`truncation="bootstrap"`) or
    counted as a termination (`"as_termination"`), and the critic regresses on the λ-returns
    Â_t + V(s_t). The expected values come from `reference.testing.reference_gae`, a numpy loop
    proved against the forward sums, with the same convention."""
    T, E = traj.rewards.shape
    env = training.cooperative_game_env(rf.parameter_sharing_game(2), episode_length=1)
    cfg = training.MARLConfig(
        total_steps=E * T, num_envs=E, num_steps=T, gamma=traj.gamma, gae_lambda=traj.lam, truncation=truncation
    )
    trainer = training.make_train(cfg, env)
    advantages, targets = trainer.advantages_and_targets(
        jnp.asarray(traj.rewards),
        jnp.asarray(traj.values[:-1]),
        jnp.asarray(traj.values[-1]),
        jnp.asarray(traj.terminations, bool),
        jnp.asarray(traj.truncations, bool),
        jnp.asarray(traj.final_values),
    )
    expected = reference_gae(traj, truncation)
    np.testing.assert_allclose(advantages, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(targets, expected + traj.values[:-1], rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@standard_promotion
@pytest.mark.parametrize("algorithm", ["happo", "hatrpo"])
def test_heterogeneous_agents_solve_the_parameter_sharing_game(algorithm):
    """Proposition 1 with deep policies: a random (or best shared) policy earns 2/2ⁿ = 0.125 for
    n = 4; a short HAPPO/HATRPO run (15k steps, fixed seed) earns ≥ 0.9 (optimum 1), while MAPPO
    with shared parameters and identical observations stays within noise of 2/2ⁿ."""
    n = 4
    trainer = game_trainer(algorithm)
    state, metrics = jax.jit(trainer)(jax.random.key(0))
    first, last = float(metrics.episode_return[0]), float(jnp.mean(metrics.episode_return[-3:]))
    assert abs(first - 2 / 2**n) < 0.1  # starts at the random policy's value
    assert last >= 0.9
    assert float(trainer.evaluate(state.actor_params, jax.random.key(1), 16)) >= 0.9

    _, shared_metrics = jax.jit(game_trainer("mappo"))(jax.random.key(0))
    # 512 samples per iteration: std of the mean of Bernoulli(0.125) is 0.015; 0.06 is 4 std.
    assert float(jnp.max(jnp.abs(shared_metrics.episode_return[-3:] - 2 / 2**n))) < 0.06


@pytest.mark.slow
@standard_promotion
def test_happo_with_one_agent_trains_exactly_like_ppo():
    """B24(e) in training: with one agent, HAPPO (`happo_update`, M = Â) and MAPPO (one agent:
    `mappo_objective` = PPO-clip) from the same key produce the same parameters iteration after
    iteration (same rollouts, same Adam steps; equal up to summation order)."""
    game = rf.random_game(jax.random.key(3), 3, (4,), 0.9)
    env = training.cooperative_game_env(game, episode_length=5)
    configs = [
        training.MARLConfig(algorithm=a, total_steps=32 * 10 * 4, num_envs=32, num_steps=10) for a in ("happo", "mappo")
    ]
    happo, ppo = (training.make_train(cfg, env) for cfg in configs)
    s_h, s_p = happo.init(jax.random.key(0)), ppo.init(jax.random.key(0))
    step_h, step_p = jax.jit(happo.step), jax.jit(ppo.step)
    for _ in range(4):
        before = s_h.actor_params
        s_h, m_h = step_h(s_h)
        s_p, m_p = step_p(s_p)
        for a, b in zip(jax.tree.leaves(s_h.actor_params), jax.tree.leaves(s_p.actor_params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(m_h.episode_return, m_p.episode_return, rtol=1e-12)
    assert not all(
        bool(jnp.allclose(a, b))
        for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(s_h.actor_params), strict=True)
    )


@pytest.mark.slow
@standard_promotion
def test_hatrpo_training_steps_respect_the_kl_threshold():
    """A45–A49 in training: in every HATRPO iteration each agent's mean KL from its old policy over
    the batch is ≤ δ (the game has one state, so the batch's KL is the KL at that state), and the
    agents do move."""
    delta = 0.01
    trainer = game_trainer("hatrpo", delta=delta)
    state = trainer.init(jax.random.key(0))
    step = jax.jit(trainer.step)
    obs = jax.vmap(trainer.env.reset)(jax.random.split(jax.random.key(1), 1))[0]
    moved = 0.0

    def log_probs(params):
        n = trainer.env.num_agents
        return [jax.nn.log_softmax(trainer.policy(i).apply(params[i], obs[:, i])) for i in range(n)]

    for _ in range(5):
        old = log_probs(state.actor_params)
        state, _ = step(state)
        new = log_probs(state.actor_params)
        for lp_old, lp_new in zip(old, new, strict=True):
            kl = float(rf.kl_divergence(jnp.exp(lp_old), jnp.exp(lp_new))[0])
            assert kl <= delta * (1 + 1e-6)
            moved = max(moved, kl)
    assert moved > delta / 10


@standard_promotion
def test_checkpoint_reloads_to_the_same_actions(tmp_path):
    """A saved `TrainState` (several seeds) reloads to identical parameters, so the same
    observations and keys give the same greedy and sampled actions; it differs from a fresh init."""
    trainer = game_trainer("happo", total_steps=512 * 3)
    keys = jax.random.split(jax.random.key(0), 2)
    state, _ = jax.jit(jax.vmap(trainer))(keys)
    path = tmp_path / "run.eqx"
    trainer.save(str(path), state)
    loaded = trainer.load(str(path), num_seeds=2)
    obs = jax.vmap(jax.vmap(trainer.env.reset))(jax.random.split(jax.random.key(1), (2, 8)))[0]
    act = jax.vmap(lambda p, o, k: trainer.actions(p, o, k))
    greedy = jax.vmap(lambda p, o: trainer.actions(p, o))
    for k in (jax.random.split(jax.random.key(2), 2),):
        np.testing.assert_array_equal(act(state.actor_params, obs, k), act(loaded.actor_params, obs, k))
    np.testing.assert_array_equal(greedy(state.actor_params, obs), greedy(loaded.actor_params, obs))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(loaded), strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)
    fresh = jax.vmap(trainer.init)(keys)
    assert not bool(jnp.allclose(jax.tree.leaves(fresh.actor_params)[0], jax.tree.leaves(loaded.actor_params)[0]))


@pytest.mark.slow
@standard_promotion
def test_simple_spread_short_run_beats_random():
    """MPE cooperative navigation (JaxMARL): 25-step episodes (every environment ends exactly one
    episode per 25-step rollout), a first iteration near the uniform-random return (≈ −80), and a
    short MAPPO run (fixed seed) whose last iterations are far better than its first."""
    pytest.importorskip("jaxmarl")
    env = training.simple_spread_env()
    assert (env.num_agents, env.obs_size, env.action_sizes) == (3, 18, (5, 5, 5))
    cfg = training.MARLConfig(algorithm="mappo", total_steps=64 * 25 * 40, num_envs=64, num_steps=25, actor_lr=1e-3)
    _, metrics = jax.jit(training.make_train(cfg, env))(jax.random.key(0))
    np.testing.assert_array_equal(metrics.episodes, 64)
    first, last = float(metrics.episode_return[0]), float(jnp.mean(metrics.episode_return[-5:]))
    assert -90 < first < -70
    assert last > first + 6


DEVICE_SCRIPT = """
import json, sys
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import reference as rf
from reference import training
assert jax.device_count() == 2, jax.devices()
env = training.cooperative_game_env(rf.parameter_sharing_game(4), episode_length=1)
cfg = training.MARLConfig(algorithm="{algorithm}", total_steps=64 * 8 * 5, num_envs=64, num_steps=8)
trainer = training.make_train(cfg, env)
state, metrics = jax.jit(jax.vmap(trainer))(jax.random.split(jax.random.key(0), 2))
print(json.dumps(dict(
    shard=trainer.shard_envs,
    devices=len(state.obs.sharding.device_set),
    returns=jnp.asarray(metrics.episode_return).tolist(),
    leaf=jnp.asarray(jax.tree.leaves(state.actor_params)[0]).ravel()[:8].tolist(),
)))
"""


@pytest.mark.slow
@standard_promotion
@pytest.mark.parametrize("algorithm", ["happo"])
def test_training_shards_the_environments_over_two_devices(algorithm):
    """Several devices: on 2 simulated CPU devices the environment batch is sharded over both
    (`jax.sharding`) and training gives the single-device result (same returns and parameters up to
    the order of the cross-device sums)."""
    env_vars = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    script = textwrap.dedent(DEVICE_SCRIPT).format(algorithm=algorithm)
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env_vars, cwd=root, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    two = json.loads(out.stdout.strip().splitlines()[-1])
    assert two["shard"] and two["devices"] == 2

    env = training.cooperative_game_env(rf.parameter_sharing_game(4), episode_length=1)
    cfg = training.MARLConfig(algorithm=algorithm, total_steps=64 * 8 * 5, num_envs=64, num_steps=8)
    trainer = training.make_train(cfg, env)
    assert not trainer.shard_envs  # this process has one device
    state, metrics = jax.jit(jax.vmap(trainer))(jax.random.split(jax.random.key(0), 2))
    np.testing.assert_allclose(two["returns"], metrics.episode_return, rtol=1e-9)
    np.testing.assert_allclose(two["leaf"], jax.tree.leaves(state.actor_params)[0].ravel()[:8], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(algorithm="ippo"), "`algorithm` must be one of"),
        (dict(num_envs=0), "`num_envs` must be an integer >= 1"),
        (dict(total_steps=10), "`total_steps` must be an integer >= 3200"),
        (dict(gamma=1.5), r"`gamma` must be in \[0, 1\]"),
        (dict(epsilon=0.0), "`epsilon` must be > 0"),
        (dict(entropy_coef=-0.1), "`entropy_coef` must be ≥ 0"),
        (dict(backtrack_ratio=1.0), r"`backtrack_ratio` must be in \(0, 1\)"),
        (dict(num_minibatches=7), "`num_minibatches` \\(7\\) must divide"),
    ],
)
def test_bad_training_configuration_is_refused(kwargs, match):
    """Bad hyper-parameters are refused when the configuration is built, naming the field."""
    with pytest.raises(ValueError, match=match):
        training.MARLConfig(**kwargs)


def test_bad_training_inputs_are_refused():
    """`make_train` and the environments name the bad argument: a config that is not a MARLConfig,
    an object that is not an environment, MAPPO's shared actor over unequal action sets, a
    `cooperative_game_env` of something that is not a game, an episode length below 1, an
    environment name `make_env` does not know or too few agents, an `Algorithm` without a name or
    whose update is not callable."""
    env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    with pytest.raises(TypeError, match="config"):  # our check, or the signature check that names it
        training.make_train({"algorithm": "happo"}, env)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="env"):
        training.make_train(training.MARLConfig(), object())  # type: ignore[arg-type]
    uneven = training.cooperative_game_env(rf.random_game(jax.random.key(0), 2, (2, 3), 0.9))
    with pytest.raises(ValueError, match="'mappo' shares one actor"):
        training.make_train(training.MARLConfig(algorithm="mappo"), uneven)
    training.make_train(training.MARLConfig(algorithm="happo"), uneven)  # heterogeneous agents are fine for HAPPO
    with pytest.raises(TypeError, match="game"):
        training.cooperative_game_env("game")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`episode_length` must be an integer >= 1"):
        training.cooperative_game_env(rf.parameter_sharing_game(2), episode_length=0)
    with pytest.raises(ValueError, match=r"make_env: `name` 'cartpole' is not one of \('simple_spread'"):
        training.make_env("cartpole")
    with pytest.raises(ValueError, match="`num_agents` must be an integer >= 1"):
        training.make_env("parameter_sharing", num_agents=0)
    update = lambda key, policy, params, opt_state, batch, factor: (params, opt_state)
    with pytest.raises((ValueError, TypeError), match="name"):  # ours, or the type hook naming it
        training.Algorithm("", update)
    with pytest.raises(TypeError, match="agent_update"):
        training.Algorithm("x", 3)  # type: ignore[arg-type]


# Faults: checkpoints, resumption, NaN, the command line ------------------------------------


def _state_leaves(state):
    out = []
    for leaf in jax.tree.leaves(state):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out.append(np.asarray(leaf))
    return out


@pytest.mark.slow
@standard_promotion
def test_resumed_run_continues_exactly_as_the_uninterrupted_run(tmp_path):
    """Four iterations of 2 seeds in chunks of 2, uninterrupted, against: two iterations, a save, a
    new trainer that loads the checkpoint, and the remaining two. Metrics and final state are equal
    bit for bit (CPU; the chunking and the checkpoint round trip change nothing)."""
    trainer = game_trainer("happo", total_steps=512 * 4)
    keys = jax.random.split(jax.random.key(3), 2)
    state0 = jax.jit(jax.vmap(trainer.init))(keys)
    full, history = training.train_in_chunks(trainer, state0, num_iterations=4, chunk=2)
    path = tmp_path / "run.eqx"
    _, first = training.train_in_chunks(trainer, state0, num_iterations=2, chunk=2, checkpoint=path)
    header = training.checkpoint_header(path)
    assert header["num_seeds"] == 2 and header["steps"] == 2 * 512
    assert training.MARLConfig.from_dict(header["config"]) == trainer.config
    again = game_trainer("happo", total_steps=512 * 4)
    resumed, second = training.train_in_chunks(again, again.load(path), num_iterations=2, chunk=1)
    whole = [np.asarray(m.episode_return) for m in history]
    parts = [np.asarray(m.episode_return) for m in first + second]
    np.testing.assert_array_equal(np.concatenate(whole, 1), np.concatenate(parts, 1))
    for a, b in zip(_state_leaves(full), _state_leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


@standard_promotion
def test_checkpoints_are_atomic_and_bad_files_are_one_clear_line(tmp_path, monkeypatch):
    """An interrupted save (the rename fails) leaves the previous checkpoint intact and no temporary
    file; a missing, truncated, foreign or mismatched file is refused with a `CheckpointError`
    whose one-line message names the file."""
    trainer = game_trainer("happo", total_steps=512 * 2)
    state = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.key(0), 2))
    path = tmp_path / "run.eqx"
    trainer.save(path, state, env="game")
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    moved = eqx_tree_add(state, 1.0)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(path, moved)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.eqx"]

    truncated = tmp_path / "truncated.eqx"
    truncated.write_bytes(before[: len(before) // 2])
    foreign = tmp_path / "foreign.eqx"
    foreign.write_bytes(b"PK\x03\x04 not a checkpoint")
    cases = [
        (tmp_path / "missing.eqx", "does not exist"),
        (truncated, "is truncated or corrupt"),
        (foreign, "is not a checkpoint"),
    ]
    for bad, message in cases:
        with pytest.raises(training.CheckpointError, match=message) as info:
            trainer.load(bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
    other = game_trainer("hatrpo", total_steps=512 * 2)
    with pytest.raises(training.CheckpointError, match=r"algorithm='happo' \(here 'hatrpo'\)"):
        other.load(path)
    with pytest.raises(training.CheckpointError, match="holds 2 seeds, not 4"):
        trainer.load(path, num_seeds=4)


@standard_promotion
def test_a_checkpoint_from_before_truncations_reads_as_terminations(tmp_path):
    """A checkpoint whose configuration has no `truncation` field (written before truncations were
    told apart, when every episode end was a termination) is read as `"as_termination"`: a trainer
    so configured loads it, one with the default `"bootstrap"` is refused naming the field."""
    old = game_trainer("happo", total_steps=512 * 2, truncation="as_termination")
    path = tmp_path / "old.eqx"
    old.save(path, old.init(jax.random.key(0)))
    data = path.read_bytes()
    magic = b"reference-marl-checkpoint\n"
    size = int.from_bytes(data[len(magic) : len(magic) + 8], "little")
    header = json.loads(data[len(magic) + 8 : len(magic) + 8 + size])
    del header["config"]["truncation"]
    text = json.dumps(header, sort_keys=True).encode()
    path.write_bytes(magic + len(text).to_bytes(8, "little") + text + data[len(magic) + 8 + size :])
    assert "truncation" not in training.checkpoint_header(path)["config"]
    assert training.MARLConfig.from_dict(training.checkpoint_header(path)["config"]) == old.config
    old.load(path)
    with pytest.raises(training.CheckpointError, match=r"truncation='as_termination' \(here 'bootstrap'\)"):
        game_trainer("happo", total_steps=512 * 2).load(path)


def eqx_tree_add(state, x):
    return jax.tree.map(lambda a: a + x if jnp.issubdtype(a.dtype, jnp.floating) else a, state)


class NaNAfter(training.CooperativeGameEnv):
    """Proposition 1's game whose reward turns NaN after `after` steps of each environment."""

    after: int = 0

    def reset(self, key):
        obs, inner = super().reset(key)
        return obs, (inner, jnp.zeros((), jnp.int32))

    def step(self, key, state, actions):
        inner, count = state
        out = super().step(key, inner, actions)
        reward = jnp.where(count >= self.after, jnp.nan, out.reward)
        return out._replace(state=(out.state, count + 1), reward=reward)


@pytest.mark.slow
@standard_promotion
def test_nan_stops_training_naming_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path):
    """The reward turns NaN during iteration 4 (each iteration is 8 steps per environment); with
    chunks of 2 iterations the first chunk is saved, the second fails inside (the traced check of
    GAE's rewards fires): `TrainingError` names iteration 4 and the checkpoint holding iteration 2,
    and that checkpoint is left as it was."""
    base = training.cooperative_game_env(rf.parameter_sharing_game(2), episode_length=1)
    env = NaNAfter(
        base.P,
        base.R,
        base.rho0,
        base.episode_length,
        base.num_agents,
        base.obs_size,
        base.action_sizes,
        after=8 * 3 + 2,
    )
    cfg = training.MARLConfig(algorithm="happo", total_steps=64 * 8 * 6, num_envs=64, num_steps=8)
    trainer = training.make_train(cfg, env)
    state = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.key(0), 2))
    path = tmp_path / "run.eqx"
    with pytest.raises(training.TrainingError) as info:
        training.train_in_chunks(trainer, state, num_iterations=6, chunk=2, checkpoint=path)
    message = str(info.value)
    assert message.startswith("training stopped at iteration 4: ")
    assert "`rewards` must be finite" in message and "holds iteration 2" in message and str(path) in message
    assert training.checkpoint_header(path)["steps"] == 2 * 64 * 8


CLI = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_marl.py"


def run_cli(*args, cwd):
    """The command line in a subprocess. It shares the proofs' compilation cache (conftest.py), when
    there is one: a run resumed or evaluated after training reads the programs training compiled."""
    env = dict(os.environ)
    if env.get("REFERENCE_PROOFS_XLA_CACHE") and not env.get("JAX_COMPILATION_CACHE_DIR"):
        env |= {
            "JAX_COMPILATION_CACHE_DIR": env["REFERENCE_PROOFS_XLA_CACHE"],
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        }
    return subprocess.run(
        [sys.executable, str(CLI), *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


@pytest.mark.slow
def test_command_line_answers_bad_arguments_with_one_line(tmp_path):
    """Each bad argument: exit status 2, one line on stderr naming the problem, no traceback; a
    checkpoint carries its configuration, so `--evaluate` needs no other flag and refuses
    contradicting ones; `--resume` of nothing names the missing checkpoint."""
    good = run_cli(
        "--env", "parameter_sharing", "--total-steps", "512", "--num-envs", "64", "--seeds", "2", cwd=tmp_path
    )
    assert good.returncode == 0, good.stderr[-2000:]
    ckpt = tmp_path / "runs" / "parameter_sharing_happo.eqx"
    (tmp_path / "truncated.eqx").write_bytes(ckpt.read_bytes()[:1000])
    cases = [
        (["--total-steps", "-5"], "--total-steps must be at least one iteration"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--evaluate", "missing.eqx"], "checkpoint 'missing.eqx' does not exist"),
        (["--evaluate", "truncated.eqx"], "is truncated or corrupt"),
        (["--evaluate", str(ckpt), "--seeds", "4"], "--seeds 4 (it has 2)"),
        (["--evaluate", str(ckpt), "--algo", "hatrpo"], "--algo 'hatrpo' (it has 'happo')"),
        (["--resume", "--env", "parameter_sharing", "--algo", "mappo"], "parameter_sharing_mappo.eqx' does not exist"),
        (["--env", "nowhere"], "invalid choice"),
        (["--env", "halfcheetah_6x1", "--n-agents", "3"], "--n-agents does not apply to halfcheetah_6x1"),
    ]
    for args, message in cases:
        out = run_cli(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, out.stderr)
        assert "Traceback" not in out.stderr
    played = run_cli("--evaluate", str(ckpt), cwd=tmp_path)
    assert played.returncode == 0 and "happo on parameter_sharing, 2 seeds" in played.stdout, played.stderr


CUSTOM_ALGORITHM = """
import jax
import jax.numpy as jnp

from reference import training


def pg_update(key, policy, params, opt_state, batch, factor, *, step_size):
    loss = lambda p: -jnp.mean(factor * policy.log_prob(p, batch.observations, batch.actions))
    grads = jax.grad(loss)(params)
    return jax.tree.map(lambda p, g: p - step_size * g, params, grads), opt_state


PG = training.Algorithm("pg", pg_update, hyperparameters={"step_size": 0.5})
"""


@pytest.mark.slow
def test_command_line_trains_evaluates_and_resumes_an_algorithm_defined_elsewhere(tmp_path):
    """`--algorithms FILE.py` adds the `Algorithm`s a file defines: `--algo` trains one, and its
    checkpoint is evaluated and resumed with the same `--algorithms`; without it, `--evaluate` says
    which flag is missing in one line; a file that defines none, or does not exist, is one line too."""
    (tmp_path / "mine.py").write_text(CUSTOM_ALGORITHM)
    common = ("--env", "parameter_sharing", "--num-envs", "64", "--seeds", "2", "--algo", "pg")
    trained = run_cli("--algorithms", "mine.py", *common, "--total-steps", "512", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    ckpt = tmp_path / "runs" / "parameter_sharing_pg.eqx"
    header = training.checkpoint_header(ckpt)
    assert header["config"]["algorithm"] == "pg" and header["config"]["algorithm_hyperparameters"] == {"step_size": 0.5}
    played = run_cli("--algorithms", "mine.py", "--evaluate", str(ckpt), cwd=tmp_path)
    assert played.returncode == 0 and "pg on parameter_sharing, 2 seeds" in played.stdout, played.stderr
    resumed = run_cli("--algorithms", "mine.py", *common, "--total-steps", "512", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "pg on parameter_sharing: resuming at iteration 1 of 2 seeds × 1 iterations" in resumed.stdout
    (tmp_path / "empty.py").write_text("x = 1\n")
    for args, message in [
        (
            ["--evaluate", str(ckpt)],
            "trained with the algorithm 'pg': pass the module that defines it with --algorithms",
        ),
        (["--algorithms", "empty.py", "--algo", "pg"], "defines no training.Algorithm at its top level"),
        (["--algorithms", "absent.py", "--algo", "pg"], "--algorithms 'absent.py': no such file"),
        (["--algo", "pg"], "argument --algo: invalid choice: 'pg'"),
    ]:
        out = run_cli(*args, cwd=tmp_path)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and message in lines[0], (args, out.stderr)

"""Networks (DESIGN §6): the parallel forward and the streaming ``step`` give the same results, for every
head, every unit, the BMRU+LRU hybrid with both combine modes, and token inputs; a forward over two halves
carrying the state (``return_state=True``) equals one pass. Float64 unless stated (tolerances.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tolerances import assert_close

from mru.nets import Block, Mixer, ModelConfig, SequenceModel
from mru.registry import UNITS
from mru.units import BMRU, LRU

IN, OUT, D_MODEL = 3, 2, 16
HEADS = ["per_step", "last", "mean"]
HYBRIDS = [(("bmru", "lru"), "sum"), (("bmru", "lru"), "concat"), (("cmru", "lru"), "concat")]


def make_model(units=("bmru", "lru"), head="per_step", combine="sum", dtype=torch.float64, seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = ModelConfig(input_size=IN, output_size=OUT, units=units, d_model=D_MODEL, n_layers=2, combine=combine,
                      head=head, **kwargs)
    return SequenceModel(cfg).to(dtype).eval()


def inputs(model, B=3, T=25, seed=1):
    g = torch.Generator().manual_seed(seed)
    if model.config.vocab_size is not None:
        return torch.randint(0, model.config.vocab_size, (B, T), generator=g)
    return 2 * torch.randn(B, T, IN, generator=g, dtype=model.head.weight.dtype)


def run_steps(model, x, state=None):
    outs = []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state)
        outs.append(y_t)
    return torch.stack(outs, 1), state


def assert_step_matches_forward(model, x, dtype=torch.float64):
    y = model(x)
    y_steps, _ = run_steps(model, x)
    head = model.config.head
    if head == "per_step":
        assert y.shape == (x.shape[0], x.shape[1], OUT)
        assert_close(y_steps, y, dtype, "per-step outputs")
    else:
        assert y.shape == (x.shape[0], OUT)
        assert_close(y_steps[:, -1], y, dtype, f"{head} head, last step")
        # a pooled head's step output is the prediction for the sequence ending at that token
        for t in (0, x.shape[1] // 2):
            assert_close(y_steps[:, t], model(x[:, : t + 1]), dtype, f"{head} head at step {t}")


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("units, combine", HYBRIDS, ids=lambda v: "+".join(v) if isinstance(v, tuple) else v)
def test_hybrid_step_matches_forward(units, combine, head):
    model = make_model(units, head, combine)
    assert_step_matches_forward(model, inputs(model))


@pytest.mark.parametrize("name", list(UNITS))
def test_every_unit_in_a_network(name):
    model = make_model((name,), "per_step")
    assert_step_matches_forward(model, inputs(model))


@pytest.mark.parametrize("head", HEADS)
def test_token_inputs(head):
    model = make_model(("bmru", "lru"), head, "concat", vocab_size=11)
    x = inputs(model)
    assert x.dtype == torch.int64
    assert_step_matches_forward(model, x)
    # int32 tokens are accepted and mean the same
    assert_close(model(x.int()), model(x), what="int32 tokens")


def test_float32_network():
    model = make_model(("bmru", "lru"), "per_step", "concat", dtype=torch.float32)
    assert_step_matches_forward(model, inputs(model), torch.float32)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("units, combine", HYBRIDS[:2] + [(("mingru", "gru"), "sum")],
                         ids=lambda v: "+".join(v) if isinstance(v, tuple) else v)
def test_two_halves_equal_one_pass(units, combine, head):
    model = make_model(units, head, combine)
    x = inputs(model, T=30)
    y, state = model(x, return_state=True)
    for k in (1, 13, 29):
        y1, s1 = model(x[:, :k], return_state=True)
        y2, s2 = model(x[:, k:], s1, return_state=True)
        if head == "per_step":
            assert_close(torch.cat([y1, y2], 1), y, what=f"outputs, split at {k}")
        else:
            assert_close(y2, y, what=f"{head} head, split at {k}")
        assert s2["count"] == state["count"] == 30
        assert_close(s2["sum"], state["sum"], what="pooled sum")
        for b, (blk2, blk) in enumerate(zip(s2["blocks"], state["blocks"])):
            for u, (h2, h) in enumerate(zip(blk2, blk)):
                assert_close(h2, h, what=f"state of block {b}, unit {u}")
    # and streaming on from a parallel prefix
    y1, s1 = model(x[:, :13], return_state=True)
    y_steps, s_end = run_steps(model, x[:, 13:], s1)
    if head == "per_step":
        assert_close(y_steps, y[:, 13:], what="step after forward")
    else:
        assert_close(y_steps[:, -1], y, what="step after forward")
    assert s_end["count"] == 30


def test_gradients_of_parallel_and_step_agree():
    """Training through the streaming path gives the same parameter gradients as the parallel one."""
    model = make_model(("bmru", "lru"), "per_step", "concat")
    x = inputs(model, T=15)
    w = torch.randn(3, 15, OUT, dtype=torch.float64)
    (model(x) * w).sum().backward()
    g_par = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    (run_steps(model, x)[0] * w).sum().backward()
    g_step = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert g_par.keys() == g_step.keys()
    assert any(".initial" in n for n in g_par), "the BMRU's learned initial state receives a gradient"
    for n in g_par:
        assert_close(g_step[n], g_par[n], what=f"grad {n}")


def test_the_bmru_writes_inside_the_network():
    """Guard for the tests above: the network's BMRUs both write and hold on these inputs."""
    model = make_model(("bmru", "lru"))
    model.track_write_rate(True)
    model(inputs(model, T=200))
    assert 0.02 < model.write_rate().item() < 0.98


def test_training_hooks():
    model = make_model(("bmru", "lru", "cmru"))
    mem = model.memory_units()
    assert len(mem) == 4 and all(isinstance(u, BMRU) for u in mem)
    model.set_eps(0.25)
    model.set_gamma(2.0)
    assert all(u.eps == 0.25 and u.gamma == 2.0 for u in mem)
    assert model.write_rate() is None
    model.track_write_rate(True)
    model(inputs(model))
    rates = [u.write_rate for u in mem]
    assert model.write_rate().item() == pytest.approx(torch.stack(rates).mean().item())


def test_config_round_trip_and_unit_kwargs():
    cfg = ModelConfig(input_size=IN, output_size=OUT, units="bmru+lru", d_model=8, n_layers=1,
                      unit_kwargs={"lru": {"r_min": 0.9, "r_max": 0.999}})
    assert cfg.units == ("bmru", "lru")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    torch.manual_seed(0)
    model = SequenceModel(cfg)
    lru = model.blocks[0].mixer.units[1]
    assert isinstance(lru, LRU)
    r = lru.layers[0].eigenvalues().abs()
    assert r.min() >= 0.9 - 1e-6 and r.max() <= 0.999 + 1e-6
    model2 = SequenceModel(cfg, head="mean")
    assert model2.config.head == "mean" and model.config.head == "per_step"
    assert SequenceModel(**dataclasses.asdict(cfg)).config == cfg


def test_block_and_mixer_modes_agree():
    torch.manual_seed(0)
    block = Block(D_MODEL, ("bmru", "lru"), combine="concat", norm="rms").double()
    x = torch.randn(2, 12, D_MODEL, dtype=torch.float64)
    y, state = block(x)
    s, ys = block.initial_state(2), []
    for t in range(12):
        y_t, s = block.step(x[:, t], s)
        ys.append(y_t)
    assert_close(torch.stack(ys, 1), y, what="block outputs")
    for h_step, h in zip(s, state):
        assert_close(h_step, h, what="block states")
    mixer = Mixer(D_MODEL, ("lru",)).double()
    assert mixer.proj is None
    assert_close(mixer(x)[0], mixer.units[0](x)[0], what="a one-unit mixer is the unit")

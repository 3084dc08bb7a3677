"""Property-based fuzzing of mru's public boundaries (docs/reliability.md).

The contract asserted for every argument hypothesis draws: a call either

- succeeds with a result of the documented shape and dtype — equal to an independent float64 loop for the
  scans, finite where the inputs are finite — or
- raises one of ``ALLOWED`` (ValueError, TypeError, FileNotFoundError; mru's own DataNotFoundError is a
  FileNotFoundError) with a message that names the offending argument,

never another exception type (IndexError, AttributeError, a RuntimeError from inside torch ...) and never a
hang: every test runs under a watchdog that ends the run with a traceback. Each test decides independently
of the library (an "oracle") whether the drawn call is valid, so a call that should fail but succeeds is
caught too.

Sections, one per public boundary: scans, units, networks and configs, registry, tasks, data files
(IDX, text), deployment files (stream state, exported step), and the command line: ``mru.cli.main`` driven
in process with drawn argument lists, whose exit status and stderr are checked by ``check_cli`` (exit 0, or
exit 2 with one line ``mru CMD: error: ...`` that names the problem, found with ``mentions``; exit 1 only for
a diverged training run; never a traceback).

Runs derandomized (the same examples every run) unless ``MRU_FUZZ_RANDOM=1``; ``MRU_FUZZ_SCALE=10`` draws
ten times as many examples.
"""

from __future__ import annotations

import faulthandler
import gzip
import json
import math
import os
import re
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from mru.cli import main as cli_main
from mru.deploy import load_exported_step, load_stream_state, save_exported_step, save_stream_state
from mru.nets import HEADS, ModelConfig, SequenceModel
from mru.registry import MODELS, UNITS, make_unit, model_units, unit_class
from mru.scan import bmru_scan, linear_scan
from mru.tasks import TASKS, TaskData, get_task, read_idx
from mru.units import BMRU, CMRU, GRU, LRU, LSTM, NBRC, BRC, MinGRU

ALLOWED = (ValueError, TypeError, FileNotFoundError)
NAN, INF = float("nan"), float("inf")
WATCHDOG_S = 120  # per test function (all of its examples): far above its runtime, so only a hang trips it

_SCALE = float(os.environ.get("MRU_FUZZ_SCALE", "1"))


def fuzz(n: int):
    """Hypothesis settings for a property drawing about ``n`` examples."""
    return settings(
        max_examples=max(1, int(n * _SCALE)),
        deadline=None,
        derandomize=not os.environ.get("MRU_FUZZ_RANDOM"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


@pytest.fixture(autouse=True)
def watchdog():
    """A hang ends the run with every thread's traceback (a watchdog thread: it fires inside C code too)."""
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# -- the contract ---------------------------------------------------------------------------------------------

def mentions(message: str, names) -> bool:
    """``message`` names one of ``names`` as a word; a one- or two-letter name must be followed by what is
    said about it ("a must", "c contains", "a: int64"), so that the article "a" does not count."""
    for name in names:
        after = r"(?![\w])" if len(name) > 2 else r"(?: must| has| is| contains|:)"
        if re.search(rf"(?<![\w]){re.escape(name)}{after}", message):
            return True
    return False


def check_call(fn, problems, *, what: str = ""):
    """Run ``fn``. With no ``problems`` it must succeed (the result is returned); otherwise it must raise one
    of ALLOWED whose message names one of ``problems`` (None is returned). Any other exception fails."""
    event("invalid call" if problems else "valid call")  # shown by pytest --hypothesis-show-statistics
    try:
        result = fn()
    except ALLOWED as e:
        assert problems, f"{what}: valid call rejected with {type(e).__name__}: {e}"
        assert mentions(str(e), problems), f"{what}: message does not name any of {sorted(problems)}: {e}"
        return None
    assert not problems, f"{what}: call succeeded although {sorted(problems)} should be rejected"
    return result


# -- drawing tensors ------------------------------------------------------------------------------------------

ALL_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
              torch.int64, torch.int32, torch.uint8, torch.bool]
REAL_FLOAT = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
JUNK = [None, 0, 1.5, "x", [1.0, 2.0], (2, 3), {}, np.zeros(3, dtype=np.float32)]


def make_tensor(shape, dtype=torch.float32, seed: int = 0, special: float | None = None, device="cpu"):
    """Values uniform in [-1, 1] (integers in [-5, 5], bools) from ``seed``; ``special`` (NaN, ±Inf) put in
    one element of a floating tensor."""
    shape = tuple(shape)
    if device == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    if dtype.is_complex:
        t = torch.complex(base, torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    elif dtype == torch.bool:
        t = base > 0
    elif not dtype.is_floating_point:
        t = (base * 5).round().to(dtype)
    else:
        t = base.to(dtype)
    if special is not None and t.numel() and (t.is_floating_point() or t.is_complex()):
        t.view(-1)[seed % t.numel()] = special
    return t


@st.composite
def any_tensor(draw, max_rank: int = 5, dtypes=ALL_DTYPES):
    """A tensor of random rank 0..max_rank, sizes 0..4, any dtype, maybe holding a NaN or an Inf."""
    shape = draw(st.lists(st.integers(0, 4), max_size=max_rank))
    special = draw(st.sampled_from([None, None, None, NAN, INF, -INF]))
    return make_tensor(shape, draw(st.sampled_from(dtypes)), draw(st.integers(0, 2**16)), special)


@st.composite
def slot(draw, shape, dtype=torch.float32, specials: bool = True, meta_ok: bool = True, dtypes=ALL_DTYPES,
         clean: bool = False):
    """The value of one tensor argument: mostly the valid ``shape``/``dtype``, otherwise a mutation — another
    rank or size, another dtype, a NaN or Inf, a tensor on the 'meta' device, or not a tensor at all.
    ``clean``: always the valid one (so that a test draws enough valid calls to check their results)."""
    kinds = ["valid"] * 5 + ["any", "dim", "dtype", "junk"] + (["special"] * 2 if specials else []) \
        + (["meta"] if meta_ok else [])
    kind = "valid" if clean else draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**16))
    if kind == "any":
        return draw(any_tensor(dtypes=dtypes))
    if kind == "junk":
        return draw(st.sampled_from(JUNK))
    if kind == "dim" and shape:
        shape = list(shape)
        shape[draw(st.integers(0, len(shape) - 1))] += draw(st.sampled_from([-1, 1, 2]))
        shape = [max(0, s) for s in shape]
    if kind == "dtype":
        dtype = draw(st.sampled_from(dtypes))
    special = draw(st.sampled_from([NAN, INF, -INF])) if kind == "special" else None
    return make_tensor(shape, dtype, seed, special, device="meta" if kind == "meta" else "cpu")


def is_tensor(x) -> bool:
    return isinstance(x, torch.Tensor)


def all_finite(*tensors) -> bool:
    return all(t is None or not (t.is_floating_point() or t.is_complex()) or bool(torch.isfinite(t).all())
               for t in tensors)


def has_nan(t) -> bool:
    return is_tensor(t) and (t.is_floating_point() or t.is_complex()) and bool(torch.isnan(t).any())


#: max |error| <= TOL[dtype] * max(1, max |expected|) against a float64 loop (half types: one rounding of
#: an fp32 result, with margin)
TOL = {torch.float64: 1e-10, torch.complex128: 1e-10, torch.float32: 1e-4, torch.complex64: 1e-4,
       torch.float16: 2.0**-9, torch.bfloat16: 2.0**-6}


def assert_matches(actual, expected, what):
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {tuple(actual.shape)}"
    if actual.numel() == 0:
        return
    wide = torch.complex128 if actual.is_complex() else torch.float64
    err = (actual.to(wide) - expected.to(wide)).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    assert err <= TOL[actual.dtype] * scale, f"{what}: error {err:.3g} vs the float64 loop ({actual.dtype})"


# ============================================================================================================
# scans
# ============================================================================================================

VALID_BACKENDS = [None, "auto", "torch", "reference", "numba"]
BACKENDS = st.sampled_from(VALID_BACKENDS * 2 + ["torhc", "", 5, ["torch"]])
LENGTHS = st.sampled_from([0, 1, 2, 3, 5, 17, 33])  # 17, 33: past the short-sequence cut-over to compiled kernels


def _tensor_problems(named, ref_name, want_rank=3):
    """Problems of the (batch, time, units) tensors ``named`` (name -> value), checked against each other."""
    bad = {n for n, v in named.items() if not is_tensor(v) or v.dim() != want_rank or v.shape[1] == 0}
    if bad:
        return bad
    ref = named[ref_name]
    for n, v in named.items():
        if v.shape != ref.shape or v.device != ref.device:
            bad |= {n, ref_name}
    return bad


def _initial_problems(name, h0, ref):
    if h0 is None or not is_tensor(ref) or ref.dim() != 3:
        return set()
    if not is_tensor(h0) or tuple(h0.shape) != (ref.shape[0], ref.shape[2]) or h0.device != ref.device:
        return {name}
    return set()


def _backend_problems(backend):
    return set() if backend in VALID_BACKENDS else {"backend"}


def linear_scan_loop(a, b, h0):
    """h_t = a_t h_{t-1} + b_t in float64/complex128: the specification."""
    wide = torch.complex128 if (a.is_complex() or b.is_complex() or (h0 is not None and h0.is_complex())) \
        else torch.float64
    a, b = a.to(wide), b.to(wide)
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0.to(wide)
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@st.composite
def scan_shapes(draw):
    return draw(st.integers(0, 3)), draw(LENGTHS), draw(st.integers(0, 3))


@fuzz(250)
@given(shape=scan_shapes(), data=st.data(), backend=BACKENDS, with_h0=st.booleans())
def test_linear_scan_any_arguments(shape, data, backend, with_h0):
    """linear_scan(a, b, h0): any ranks, sizes (incl. T = 0, empty batch or units), dtypes (int, bool,
    complex, half), NaN/Inf, junk and meta-device arguments, backend names."""
    B, T, U = shape
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64, torch.complex64, torch.float16]))
    meta_slot = data.draw(st.sampled_from([None, None, None, "a", "b", "h0"]))
    clean = data.draw(st.integers(0, 2)) == 0
    a = data.draw(slot((B, T, U), dtype, meta_ok=meta_slot == "a", clean=clean), label="a")
    b = data.draw(slot((B, T, U), dtype, meta_ok=meta_slot == "b", clean=clean), label="b")
    h0 = data.draw(slot((B, U), dtype, meta_ok=meta_slot == "h0", clean=clean), label="h0") if with_h0 else None

    problems = _tensor_problems({"a": a, "b": b}, "a") | _initial_problems("h0", h0, b) | _backend_problems(backend)
    if not problems:
        out_dtype = torch.promote_types(a.dtype, b.dtype)
        if is_tensor(h0):
            out_dtype = torch.promote_types(out_dtype, h0.dtype)
        if not (out_dtype.is_floating_point or out_dtype.is_complex):
            problems = {"a", "b", "h0"}
    h = check_call(lambda: linear_scan(a, b, h0, backend=backend), problems, what="linear_scan")
    if h is None:
        return
    assert h.dtype == out_dtype and h.shape == a.shape
    if all_finite(a, b, h0) and (a.numel() == 0 or a.abs().max() <= 1):  # |a| > 1 may overflow, rightly
        assert all_finite(h)
        assert_matches(h, linear_scan_loop(a, b, h0), "linear_scan")


def _real_number_problem(name, value, ok) -> set:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        return {name}
    return set() if ok(float(value)) else {name}


EPS_VALID = st.sampled_from([0.0, 0, 1, 1.0, 0.5, 1 / 3])
GAMMA_VALID = st.sampled_from([1.0, 0.1, 3, 1e3, np.float64(2.0)])
EPS = EPS_VALID | st.sampled_from([-1, 2, 1.0001, NAN, INF, "0.5", None, True, [0.0]])
GAMMA = GAMMA_VALID | st.sampled_from([0, -1.0, INF, NAN, "1", None, False])


def bmru_scan_loop(c, beta, s0, eps):
    """DESIGN §2-3 in float64: the write decision |c| >= |beta| on the exact input values."""
    cdt = torch.promote_types(c.dtype, beta.dtype)
    cdt = torch.float32 if cdt in (torch.float16, torch.bfloat16) else cdt
    c, beta = c.double(), beta.double()
    s = torch.zeros_like(c[:, 0]) if s0 is None else s0.to(cdt).double()
    out = []
    for t in range(c.shape[1]):
        z = c[:, t].abs() >= beta[:, t].abs()
        sgn = torch.where(c[:, t] >= 0, 1.0, -1.0).double()
        s = torch.where(z, sgn + eps * s, s)
        out.append(s)
    return torch.stack(out, 1)


@fuzz(250)
@given(shape=scan_shapes(), data=st.data(), with_s0=st.booleans(),
       check_finite=st.sampled_from([True, True, True, False]))
def test_bmru_scan_any_arguments(shape, data, with_s0, check_finite):
    """bmru_scan(c, beta, s0, eps, gamma): shapes and dtypes as for linear_scan, plus absurd eps/gamma
    (negative, > 1, NaN, Inf, strings, bools) and NaN/Inf in c or beta (rejected unless check_finite=False)."""
    B, T, U = shape
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    meta_slot = data.draw(st.sampled_from([None, None, None, "c", "beta", "s0"]))
    clean = data.draw(st.integers(0, 2)) == 0
    c = data.draw(slot((B, T, U), dtype, meta_ok=meta_slot == "c", clean=clean), label="c")
    beta = data.draw(slot((B, T, U), dtype, meta_ok=meta_slot == "beta", clean=clean), label="beta")
    s0 = data.draw(slot((B, U), dtype, meta_ok=meta_slot == "s0", clean=clean), label="s0") if with_s0 else None
    eps = data.draw(EPS_VALID if clean else EPS, label="eps")
    gamma = data.draw(GAMMA_VALID if clean else GAMMA, label="gamma")
    backend = data.draw(st.sampled_from(VALID_BACKENDS) if clean else BACKENDS, label="backend")

    problems = _tensor_problems({"c": c, "beta": beta}, "c") | _initial_problems("s0", s0, c)
    if not problems:
        problems = {n for n, v in (("c", c), ("beta", beta), ("s0", s0)) if v is not None and not v.is_floating_point()}
    problems |= _real_number_problem("eps", eps, lambda v: 0.0 <= v <= 1.0)
    problems |= _real_number_problem("gamma", gamma, lambda v: 0.0 < v < INF)
    problems |= _backend_problems(backend)
    finite = not problems and all_finite(c, beta)
    if not problems and check_finite and not finite:
        problems = {"c", "beta"}
    s = check_call(lambda: bmru_scan(c, beta, s0, eps, gamma, backend=backend, check_finite=check_finite),
                   problems, what="bmru_scan")
    if s is None:
        return
    assert s.dtype == torch.promote_types(c.dtype, beta.dtype) and s.shape == c.shape
    if finite and all_finite(s0):
        assert all_finite(s)
        assert_matches(s, bmru_scan_loop(c, beta, s0, float(eps)), "bmru_scan")


# ============================================================================================================
# units
# ============================================================================================================

UNIT_CLASSES = {"bmru": BMRU, "cmru": CMRU, "lru": LRU, "mingru": MinGRU, "brc": BRC, "nbrc": NBRC,
                "gru": GRU, "lstm": LSTM}
assert set(UNIT_CLASSES) == set(UNITS), "a unit was added to the registry: fuzz it here too"

#: argument -> (valid values, invalid values)
SIZE = ([1, 2, 3], [0, -1, -7, 2.0, 2.5, "3", None, True, [2], NAN])
COMMON_ARGS = {
    "input_size": SIZE,
    "hidden_size": SIZE,
    "num_layers": ([1, 2], SIZE[1]),
    "batch_first": ([True, False], ["false", "yes", 1, 0, None]),
    "dropout": ([0.0, 0, 0.25, 0.999], [1.0, 1.5, -0.1, NAN, INF, "0.1", None, True]),
}
UNIT_ARGS = {
    "bmru": {"eps": ([None, 0.0, 0.5, 1, 1.0], [-1, 2, 1.0001, NAN, INF, "0.5", True, [0]]),  # None: the default
             "gamma": ([0.1, 1, 3.5, 1e3], [0, 0.0, -1, INF, NAN, "1", None, True]),
             "learn_initial_state": ([True, False], ["no", 1, None]),
             "bias": ([True, False], ["False", 0, None])},
    "lru": {"state_size": ([None, 1, 3], [0, -2, 2.0, True, "4"]),
            "r_min": ([0.0, 0.5, 0.9, 0.99], [-0.1, 1.5, NAN, "0.5", None]),
            "r_max": ([0.95, 0.999, 1.0], [-1.0, 1.01, NAN, INF, "1", None]),
            "max_phase": ([0.1, math.pi, 2 * math.pi], [0, -1.0, 7.0, 1e300, INF, NAN, "1", None])},
}
UNIT_ARGS["cmru"] = UNIT_ARGS["bmru"]


@st.composite
def unit_arguments(draw, name):
    """Constructor keyword arguments for unit ``name``, each valid or not; returns (kwargs, problems)."""
    kwargs, problems = {}, set()
    clean = draw(st.integers(0, 2)) == 0
    for arg, (good, bad) in {**COMMON_ARGS, **UNIT_ARGS.get(name, {})}.items():
        if not clean and draw(st.integers(0, 5)) == 0:
            kwargs[arg] = draw(st.sampled_from(bad))
            problems.add(arg)
        elif arg in ("input_size", "hidden_size") or draw(st.booleans()):
            kwargs[arg] = draw(st.sampled_from(good))
    if name == "lru" and not problems & {"r_min", "r_max"} and kwargs.get("r_min", 0.0) > kwargs.get("r_max", 1.0):
        problems |= {"r_min", "r_max"}
    return kwargs, problems


def _ok_output(unit, y, h, x_shape, batch_first=True):
    """Shapes of forward's (y, h_n) for an input of x_shape."""
    L, S = unit.num_layers, unit.state_size
    if len(x_shape) == 2:
        want_y, want_h = (x_shape[0], unit.hidden_size), (L, S)
    else:
        B = x_shape[0] if batch_first else x_shape[1]
        want_y, want_h = (*x_shape[:2], unit.hidden_size), (L, B, S)
    assert tuple(y.shape) == want_y and tuple(h.shape) == want_h, f"{tuple(y.shape)}, {tuple(h.shape)}"
    assert h.dtype == unit.state_dtype and all_finite(y, h)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's: dropout with one layer of nn.GRU/LSTM does nothing
@pytest.mark.parametrize("name", sorted(UNIT_CLASSES))
@fuzz(40)
@given(data=st.data())
def test_unit_constructor_absurd_hyperparameters(name, data):
    """Every unit's constructor with negative/zero/non-integer/string sizes, num_layers = 0, dropout 1.5,
    eps -1 or 2, gamma 0/Inf/NaN, r_min > r_max, max_phase out of (0, 2π], non-bool flags; a unit that is
    built runs forward and step with the documented shapes and finite outputs."""
    kwargs, problems = data.draw(unit_arguments(name))
    unit = check_call(lambda: UNIT_CLASSES[name](**kwargs), problems, what=f"{name}{kwargs}")
    if unit is None:
        return
    unit.eval()
    x = make_tensor((2, 3, unit.input_size), seed=1)
    if not unit.batch_first:
        x = x.transpose(0, 1)
    y, h = unit(x)
    _ok_output(unit, y, h, tuple(x.shape), unit.batch_first)
    y_t, s = unit.step(make_tensor((2, unit.input_size), seed=2), h)
    assert tuple(y_t.shape) == (2, unit.hidden_size) and tuple(s.shape) == tuple(h.shape) and all_finite(y_t, s)


_UNITS: dict = {}


def fuzz_unit(name, num_layers, batch_first):
    key = (name, num_layers, batch_first)
    if key not in _UNITS:
        torch.manual_seed(0)
        _UNITS[key] = UNIT_CLASSES[name](3, 4, num_layers=num_layers, batch_first=batch_first).eval()
    return _UNITS[key]


def _state_problems(h, unit, want_shape):
    if h is None:
        return set()
    if not is_tensor(h) or tuple(h.shape) != want_shape or h.device.type != "cpu":
        return {"state"}
    if not (h.is_floating_point() or (h.is_complex() and unit.state_dtype.is_complex)):
        return {"state"}
    return set()


@pytest.mark.parametrize("name", sorted(UNIT_CLASSES))
@fuzz(60)
@given(data=st.data(), num_layers=st.sampled_from([1, 2]), batch_first=st.booleans(),
       step=st.booleans(), rank=st.sampled_from(["batched", "batched", "unbatched"]),
       B=st.integers(0, 3), T=st.sampled_from([0, 1, 4]), with_state=st.booleans())
def test_unit_forward_and_step_any_input(name, data, num_layers, batch_first, step, rank, B, T, with_state):
    """forward(x, h0) and step(x_t, state) of every unit with wrong ranks (0-5), feature sizes, dtypes
    (int, bool, complex, half, float64 for a float32 unit), T = 0, an empty batch, NaN/Inf, meta-device
    tensors and non-tensors, and the same for the state. A NaN input never yields an all-finite output."""
    unit = fuzz_unit(name, num_layers, batch_first)
    L, S, n = unit.num_layers, unit.state_size, unit.input_size
    unbatched = rank == "unbatched"
    if step:
        x_shape = (n,) if unbatched else (B, n)
    else:
        x_shape = (T, n) if unbatched else ((B, T, n) if batch_first else (T, B, n))
    clean = data.draw(st.integers(0, 2)) == 0
    x = data.draw(slot(x_shape, clean=clean), label="x")
    h_shape = (L, S) if unbatched else (L, B, S)
    h = data.draw(slot(h_shape, unit.state_dtype, clean=clean), label="state") if with_state else None

    problems = set()
    ranks = (1, 2) if step else (2, 3)
    if not is_tensor(x) or x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() not in ranks \
            or x.shape[-1] != n:
        problems.add("input")
    else:
        unbatched = x.dim() == ranks[0]
        if not step:
            time_axis = 0 if unbatched else (1 if batch_first else 0)
            if x.shape[time_axis] == 0:
                problems.add("input")
        batch = 1 if unbatched else (x.shape[0] if (step or batch_first) else x.shape[1])
        if batch == 0:
            problems.add("input")
        problems |= _state_problems(h, unit, (L, S) if unbatched else (L, batch, S))

    def call():
        return unit.step(x, h) if step else unit(x, h)

    if not problems and not all_finite(x, h):
        # a memory unit cannot decide a write from a NaN or Inf (in its input, or reaching a second layer from
        # a non-finite state): its parallel forward says so; otherwise a NaN input must show in the output.
        # (An Inf may saturate a gate, sigmoid(inf) = 1, and a BMRU's first write overwrites a NaN state:
        # finite outputs are right there.)
        try:
            y, _ = call()
        except ValueError as e:
            assert not step and name in ("bmru", "cmru") and "NaN or Inf" in str(e), str(e)
            return
        assert not (has_nan(x) and all_finite(y)), f"{name}: a NaN input gave an all-finite output"
        return
    out = check_call(call, problems, what=name)
    if out is None:
        return
    y, new = out
    if step:
        assert tuple(y.shape) == (*x.shape[:-1], unit.hidden_size) and tuple(new.shape) == tuple(
            (L, S) if x.dim() == 1 else (L, x.shape[0], S))
    else:
        assert tuple(y.shape) == (*x.shape[:-1], unit.hidden_size)
    assert new.dtype == unit.state_dtype and all_finite(y, new)


def test_unit_nan_input_is_rejected_or_visible():
    """Pinned cases: the BMRU's forward rejects a NaN (a write cannot be decided from it); its step, which
    avoids a host synchronisation per token, turns the state and output NaN instead of silently holding."""
    unit = BMRU(3, 4).eval()
    x = torch.zeros(2, 3)
    x[1, 0] = NAN
    with pytest.raises(ValueError, match="NaN or Inf"):
        unit(x.unsqueeze(1))
    y, s = unit.step(x)
    assert torch.isnan(y[1]).all() and torch.isnan(s[0, 1]).all() and torch.isfinite(y[0]).all()


@fuzz(60)
@given(name=st.sampled_from(["bmru", "cmru"]), which=st.sampled_from(["eps", "gamma"]),
       value=st.one_of(EPS, GAMMA))
def test_bmru_eps_gamma_setters(name, which, value):
    """Annealing setters reject what the constructor rejects and keep the old value."""
    unit = fuzz_unit(name, 1, True)
    before = getattr(unit, which)
    ok = (lambda v: 0.0 <= v <= 1.0) if which == "eps" else (lambda v: 0.0 < v < INF)
    problems = set() if isinstance(value, (int, float)) and not isinstance(value, bool) and ok(float(value)) \
        else {which}
    try:
        check_call(lambda: setattr(unit, which, value), problems, what=f"{name}.{which}")
        if problems:
            assert getattr(unit, which) == before
    finally:
        setattr(unit, which, before)


# ============================================================================================================
# networks and configs
# ============================================================================================================

CONFIG_FIELDS = {
    # field -> (valid values, invalid values)
    "input_size": ([1, 3], [0, -1, 2.0, "3", None, True]),
    "output_size": ([1, 2], [0, -4, 1.5, "2", None]),
    "d_model": ([4, 8], [0, -8, 8.0, "8", None, False]),
    "n_layers": ([1, 2], [0, -1, 1.0, "2", None]),
    "units": (["bmru", "bmru+lru", ("lru",), ["mingru", "gru"], ("BMRU",), "cmru+lru", ("brc", "lstm")],
              [None, 5, (), [], ("bmru+lru",), ("bmruu",), [None], "bmru+", "", "transformer"]),
    "combine": (["sum", "concat"], ["add", None, 5]),
    "mlp_ratio": ([0, 0.5, 2.0], [-1, NAN, INF, "2", None]),
    "dropout": ([0, 0.0, 0.3], [1.0, -0.1, NAN, "0.1", None]),
    "norm": (["layer", "rms"], ["batch", None, 0]),
    "head": (list(HEADS), ["first", None, "LAST"]),
    "vocab_size": ([None, 1, 5], [0, -3, True, 2.5, "5"]),
}
#: what a message about each field may call it
FIELD_NAMES = {"units": ("units", "unit", "model"), "combine": ("combine",), "unit_kwargs": ("unit_kwargs",)}


@st.composite
def config_arguments(draw):
    kwargs, problems = {"input_size": 3, "output_size": 2, "d_model": 4, "n_layers": 1}, set()
    clean = draw(st.integers(0, 2)) == 0
    for field, (good, bad) in CONFIG_FIELDS.items():
        if not clean and draw(st.integers(0, 6)) == 0:
            kwargs[field] = draw(st.sampled_from(bad))
            problems |= set(FIELD_NAMES.get(field, (field,)))
        elif draw(st.booleans()):
            kwargs[field] = draw(st.sampled_from(good))
    units = kwargs.get("units", ("bmru",))
    unit_names = model_units(units) if isinstance(units, str) and "units" not in problems else \
        tuple(str(u).lower() for u in units) if isinstance(units, (tuple, list)) else ()
    choice = draw(st.sampled_from(["none", "empty", "own"] if clean else
                                  ["none", "none", "empty", "own", "bad_arg", "not_a_dict", "foreign"]))
    if choice == "empty":
        kwargs["unit_kwargs"] = {}
    elif choice == "own" and unit_names:
        kwargs["unit_kwargs"] = {unit_names[0]: {}}
    elif choice == "not_a_dict":
        kwargs["unit_kwargs"] = draw(st.sampled_from([None, "lru", {"bmru": 5}]))
        problems |= set(FIELD_NAMES["unit_kwargs"])
    elif choice == "foreign":
        kwargs["unit_kwargs"] = {"nbrc" if "nbrc" not in unit_names else "gru": {}}
        problems |= set(FIELD_NAMES["unit_kwargs"])
    elif choice == "bad_arg" and "lru" in unit_names:
        kwargs["unit_kwargs"] = {"lru": draw(st.sampled_from([{"r_min": 2.0}, {"bogus": 1}, {"max_phase": -1}]))}
        kwargs["_model_problem"] = True  # a valid config whose model cannot be built
    return kwargs, problems


@fuzz(120)
@given(args=config_arguments(), B=st.integers(1, 2), T=st.integers(1, 3))
def test_model_config_and_model(args, B, T):
    """ModelConfig with bad sizes, unknown unit/head/combine/norm names, units=() or ('bmru+lru',), float or
    string hyper-parameters, bad unit_kwargs; SequenceModel of a valid config (whose unit_kwargs may be
    rejected by the unit) runs forward and step with the documented shapes."""
    kwargs, problems = args
    model_problem = kwargs.pop("_model_problem", False)
    config = check_call(lambda: ModelConfig(**kwargs), problems, what=f"ModelConfig{kwargs}")
    if config is None:
        return
    assert ModelConfig.from_dict(config.to_dict()) == config
    model_args = {"r_min", "bogus", "max_phase"} if model_problem else set()
    model = check_call(lambda: SequenceModel(config), model_args, what=f"SequenceModel{kwargs}")
    if model is None:
        return
    model.eval()
    if config.vocab_size is None:
        x = make_tensor((B, T, config.input_size), seed=3)
    else:
        x = torch.randint(0, config.vocab_size, (B, T))
    y, state = model(x, return_state=True)
    want = (B, T, config.output_size) if config.head == "per_step" else (B, config.output_size)
    assert tuple(y.shape) == want and all_finite(y)
    y_t, state = model.step(x[:, 0], state)
    assert tuple(y_t.shape) == (B, config.output_size) and all_finite(y_t)


@fuzz(80)
@given(d=st.one_of(
    st.dictionaries(st.sampled_from(["input_size", "output_size", "units", "d_model", "head", "d_modle", "lr", 3]),
                    st.sampled_from([1, 3, "bmru", "last", None, -1, [], {}]), max_size=6),
    st.sampled_from([None, [1, 2], "abc", 5, ("input_size", 3)])))
def test_model_config_from_any_dict(d):
    """ModelConfig.from_dict (what a config file is read into) with unknown keys, missing keys, wrong value
    types, or not a dict at all."""
    known = set(CONFIG_FIELDS) | {"unit_kwargs"}
    if not isinstance(d, dict):
        named = ["dict"]
    else:
        named = [k for k in d if k not in known] or [k for k in ("input_size", "output_size") if k not in d]
    try:
        expected = None if named else ModelConfig(**d)
    except ALLOWED:
        named = ["ModelConfig"]
    try:
        got = ModelConfig.from_dict(d)
    except ALLOWED as e:
        assert named, f"from_dict({d!r}) rejected a valid config: {e}"
        assert any(repr(k) in str(e) or str(k) in str(e) for k in named), f"{e} does not name {named}"
        return
    assert not named and got == expected


_MODELS: dict = {}


def fuzz_model(kind):
    if kind not in _MODELS:
        torch.manual_seed(0)
        if kind == "float":   # the hybrid of DESIGN §6, per-step head
            cfg = ModelConfig(input_size=3, output_size=2, units=("bmru", "lru"), d_model=8, n_layers=1)
        else:                 # token inputs, pooled head
            cfg = ModelConfig(input_size=1, output_size=2, units=("mingru",), d_model=8, n_layers=2,
                              head="mean", vocab_size=5)
        _MODELS[kind] = SequenceModel(cfg).eval()
    return _MODELS[kind]


STATE_MUTATIONS = ["junk", "missing_key", "short_blocks", "unit_state_shape", "unit_state_dtype",
                   "unit_state_none", "sum_shape", "count_negative", "count_str", "other_batch"]


def mutate_state(model, batch, kind):
    state = model.initial_state(batch)
    if kind == "junk":
        return "state"
    if kind == "missing_key":
        del state["sum"]
    elif kind == "short_blocks":
        state["blocks"] = state["blocks"][:-1] if len(state["blocks"]) > 1 else []
    elif kind == "unit_state_shape":
        state["blocks"][0][0] = torch.zeros(1, batch + 1, 8)
    elif kind == "unit_state_dtype":
        state["blocks"][0][0] = torch.zeros_like(state["blocks"][0][0], dtype=torch.int64)
    elif kind == "unit_state_none":
        state["blocks"][0][0] = None
    elif kind == "sum_shape":
        state["sum"] = torch.zeros(batch, 7)
    elif kind == "count_negative":
        state["count"] = -1
    elif kind == "count_str":
        state["count"] = "3"
    elif kind == "other_batch":
        state = model.initial_state(batch + 1)
    return state


@fuzz(150)
@given(kind=st.sampled_from(["float", "tokens"]), step=st.booleans(), B=st.integers(0, 2),
       T=st.sampled_from([0, 1, 3]), data=st.data(),
       state_kind=st.sampled_from(["none", "none", "valid", "valid", *STATE_MUTATIONS]))
def test_model_inputs_and_state(kind, step, B, T, data, state_kind):
    """SequenceModel forward/step with wrong ranks, feature sizes and dtypes, float tokens, token ids out of
    the vocabulary, T = 0, an empty batch, NaN inputs, and damaged streaming states."""
    model = fuzz_model(kind)
    tokens = kind == "tokens"
    clean = data.draw(st.integers(0, 2)) == 0
    if clean:
        B, T, state_kind = max(B, 1), max(T, 1), data.draw(st.sampled_from(["none", "valid"]))
    shape = ((B,) if step else (B, T)) if tokens else ((B, 3) if step else (B, T, 3))
    if tokens:
        choice = "valid" if clean else data.draw(st.sampled_from(
            ["valid", "valid", "valid", "high", "negative", "float", "rank", "int8", "junk"]), label="x")
        x = torch.randint(0, 5, shape)
        if choice == "high" and x.numel():
            x.view(-1)[0] = data.draw(st.sampled_from([5, 6, 10**6]))
        elif choice == "negative" and x.numel():
            x.view(-1)[-1] = -1
        elif choice == "float":
            x = x.float()
        elif choice == "rank":
            x = x.unsqueeze(-1)
        elif choice == "int8":
            x = x.to(torch.int8)
        elif choice == "junk":
            x = x.tolist()
    else:
        x = data.draw(slot(shape, dtypes=[torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64],
                           clean=clean), label="x")
    batch_ok = is_tensor(x) and x.dim() >= 1 and x.shape[0] > 0
    xb = x.shape[0] if batch_ok else max(B, 1)  # the state is built for the batch of x as drawn
    state = None if state_kind == "none" else (
        model.initial_state(xb) if state_kind == "valid" else mutate_state(model, xb, state_kind))

    problems = set()
    rank = (1 if step else 2) if tokens else (2 if step else 3)
    if not is_tensor(x) or x.dim() != rank or x.device.type != "cpu" or (not tokens and x.shape[-1] != 3):
        problems.add("input")
    elif tokens and (x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8)
                     or (x.numel() and (x.min() < 0 or x.max() >= 5))):
        problems.add("token")
    elif not tokens and x.dtype != torch.float32:
        problems.add("input")
    elif (not step and x.shape[1] == 0) or not batch_ok:
        problems.add("input")
    if state_kind not in ("none", "valid"):
        problems.add("state")
    problems |= {"tensor"} if "input" in problems else set()

    def call():
        return model.step(x, state) if step else model(x, state, return_state=True)

    if not problems and not tokens and not all_finite(x):
        # the hybrid's BMRU cannot decide a write from a NaN or Inf: the parallel forward says so, the step
        # makes it visible as NaN
        try:
            y, _ = call()
        except ValueError as e:
            assert not step and "NaN or Inf" in str(e), str(e)
            return
        assert not all_finite(y), "a non-finite input gave an all-finite output"
        return
    out = check_call(call, problems, what=f"{kind} model, step={step}")
    if out is None:
        return
    y, new_state = out
    batch = x.shape[0]
    head_per_step = model.config.head == "per_step"
    want = (batch, 2) if step or not head_per_step else (batch, x.shape[1], 2)
    assert tuple(y.shape) == want
    assert new_state["count"] == (0 if state is None else state["count"]) + (1 if step else x.shape[1])
    if all_finite(x):
        assert all_finite(y)


# ============================================================================================================
# registry
# ============================================================================================================

NAMES = sorted(set(UNITS) | set(MODELS))


@st.composite
def near_names(draw):
    """Registry names, their typos (a character dropped, doubled or changed), '+'-joins, case changes, and
    arbitrary text."""
    kind = draw(st.sampled_from(["exact", "typo", "join", "upper", "text", "junk"]))
    if kind == "text":
        return draw(st.text(max_size=12))
    if kind == "junk":
        return draw(st.sampled_from([None, 5, 1.5, ["bmru"], ("bmru", "lru"), b"bmru"]))
    name = draw(st.sampled_from(NAMES))
    if kind == "typo":
        i = draw(st.integers(0, len(name) - 1))
        op = draw(st.sampled_from(["drop", "double", "change"]))
        c = draw(st.sampled_from("abcdeilmnoqrstuxz+ "))
        name = name[:i] + ("" if op == "drop" else name[i] * 2 if op == "double" else c) + name[i + 1:]
    elif kind == "join":
        name = "+".join(draw(st.lists(st.sampled_from(sorted(UNITS) + ["", "lur"]), min_size=1, max_size=3)))
    elif kind == "upper":
        name = name.upper()
    return name


@fuzz(200)
@given(name=near_names())
def test_registry_names(name):
    """unit_class / make_unit / model_units resolve a known name (any case) or raise ValueError saying
    'unknown unit' or 'unknown model' (with a suggestion when one is close)."""
    key = str(name).lower()
    cls = check_call(lambda: unit_class(name), set() if key in UNITS else {"unit"}, what=f"unit_class({name!r})")
    if cls is not None:
        assert cls is UNITS[key][0]
        unit = make_unit(name, 2, 3)
        assert isinstance(unit, cls) and unit.hidden_size == 3
    parts = key.split("+")
    valid = key in MODELS or (len(parts) > 1 and all(p.strip() in UNITS for p in parts))
    units = check_call(lambda: model_units(name), set() if valid else {"unit", "model"},
                       what=f"model_units({name!r})")
    if units is not None:
        assert all(u in UNITS for u in units) and units


# ============================================================================================================
# tasks
# ============================================================================================================

OPTION_VALUES = [None, "abc", "", -1, 0, 1, 2, 3, 0.5, 1e-300, 10**6, NAN, INF, -0.0, [1], {}, True,
                 "reads", "all", "0.3"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz_text") / "corpus.txt"
    path.write_text("the bistable unit holds its state until a write; " * 20, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(TASKS))
@fuzz(30)
@given(data=st.data())
def test_get_task_bad_options(name, text_file, data):
    """get_task with bad lengths and seeds (0, negative, float, NaN, Inf, strings), unknown options, and
    absurd values for every option; a task that is built yields a dataset of the documented shapes."""
    cls = TASKS[name]
    kwargs = {}
    if data.draw(st.booleans(), label="set length"):
        kwargs["length"] = data.draw(st.sampled_from([1, 2, 7, 16, 64, 0, -3, 2.5, "12", "x", NAN, INF, None]))
    if data.draw(st.booleans(), label="set seed"):
        kwargs["seed"] = data.draw(st.sampled_from([0, 3, -1, "2", 1.5, None]))
    for option in cls.option_defaults:
        if data.draw(st.booleans(), label=f"set {option}"):
            kwargs[option] = data.draw(st.sampled_from(OPTION_VALUES))
    if name == "charlm" and data.draw(st.integers(0, 3)):
        kwargs["path"] = str(text_file)
    unknown = data.draw(st.sampled_from([None, None, "lenght", "noise"]))
    if unknown and unknown not in cls.option_defaults:
        kwargs[unknown] = 1
    try:
        task = get_task(name, **kwargs)
    except ALLOWED as e:
        assert name in str(e), f"{name}{kwargs}: the message does not name the task: {e}"
        if unknown in kwargs:
            assert unknown in str(e) or any(k in str(e) for k in kwargs), str(e)
        return
    assert unknown not in kwargs, f"{name}: unknown option {unknown!r} accepted"
    assume(task.length <= 128)
    try:
        d = task.dataset("train", n=2)
    except ALLOWED as e:  # e.g. MNIST files absent, or a text too short for the split
        assert name in str(e)
        return
    T = task.length
    if task.input_kind == "tokens":
        assert d.x.shape == (2, T) and d.x.dtype == torch.int64
    else:
        assert d.x.shape == (2, T, task.input_size) and d.x.dtype == torch.float32 and torch.isfinite(d.x).all()
    assert d.y.shape[:1] == (2,) and (d.mask is None or d.mask.shape == (2, T))


SPLITS_OK, N_OK, LENGTHS_OK = ["train", "val", "test"], [None, 1, 3, 2.0, "2"], [None, 2, 5, 3.0, "6"]


@fuzz(60)
@given(args=st.tuples(st.sampled_from(SPLITS_OK), st.sampled_from(N_OK), st.sampled_from(LENGTHS_OK))
       | st.tuples(st.sampled_from(SPLITS_OK + ["Train", "", None, 0]),
                   st.sampled_from(N_OK + [0, -1, 2.5, "x", NAN]),
                   st.sampled_from(LENGTHS_OK + [1, 0, -4, 1.5, INF])))
def test_dataset_arguments(args):
    """Task.dataset(split, n, length) with unknown splits, bad counts and bad lengths."""
    split, n, length = args
    task = get_task("latch", length=8)
    problems = set()
    if split not in ("train", "val", "test"):
        problems.add("split")
    if n is not None and not (isinstance(n, int) or (isinstance(n, str) and n.isdigit())
                              or (isinstance(n, float) and n.is_integer())):
        problems.add("n")
    elif n is not None and int(n) < 1:
        problems.add("n")
    if length is not None:
        ok_int = isinstance(length, int) or (isinstance(length, str) and length.isdigit()) or \
            (isinstance(length, float) and length.is_integer())
        if not ok_int or int(length) < 2:  # the latch needs a write and a read
            problems.add("length")
    d = check_call(lambda: task.dataset(split, n, length), problems, what=f"dataset({split!r}, {n!r}, {length!r})")
    if d is not None:
        assert len(d) == (int(n) if n is not None else task.default_sizes[split])
        assert d.length == (int(length) if length is not None else 8)


@fuzz(60)
@given(n=st.integers(1, 4), index=st.one_of(st.integers(-6, 6), st.sampled_from([np.int64(1), True])),
       junk=st.sampled_from(["x", "y", "mask", None]))
def test_taskdata_indexing_and_construction(n, index, junk):
    """TaskData: an int index selects one sequence or raises IndexError past the end (the sequence protocol,
    so iterating over a TaskData ends); a non-tensor field is a TypeError naming it."""
    x, y = torch.arange(n * 2.0).reshape(n, 2, 1), torch.arange(n)
    if junk is not None:
        fields = {"x": x, "y": y, "mask": None, junk: [1, 2]}
        check_call(lambda: TaskData(**fields), {f"TaskData.{junk}"}, what="TaskData")
        return
    data = TaskData(x, y)
    if -n <= index < n:
        assert data[index].y.tolist() == [y[int(index)].item()]
    else:
        with pytest.raises(IndexError, match="out of range"):
            data[index]
    assert [d.y.item() for d in data] == y.tolist()


@fuzz(60)
@given(name=st.sampled_from(["latch", "copy_first", "digits"]), data=st.data())
def test_task_loss_and_metric_any_predictions(name, data):
    """Task.loss / metric with predictions of another shape or dtype (int, bool, complex), NaN, or not a
    tensor: a finite loss for finite predictions of the documented shape, else an error naming them."""
    task = get_task(name, **({} if name == "digits" else {"length": 6}))
    batch = task.dataset("val", n=3)
    shape = (3, task.output_size) if task.readout == "last" else (3, batch.length, task.output_size)
    pred = data.draw(slot(shape, meta_ok=False), label="pred")
    ok = is_tensor(pred) and tuple(pred.shape) == shape and pred.is_floating_point()
    loss = check_call(lambda: task.loss(pred, batch), set() if ok else {"predictions"}, what=f"{name}.loss")
    if loss is not None:
        assert loss.dim() == 0 and (bool(torch.isfinite(loss)) or not all_finite(pred))
        metric = task.metric(pred, batch)
        assert isinstance(metric, float)
    check_call(lambda: task.loss(make_tensor(shape), "data"), {"data"}, what=f"{name}.loss(data=str)")


# ============================================================================================================
# data files: IDX and text
# ============================================================================================================

IDX_CODES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def idx_spec(raw: bytes):
    """The array an IDX file holds per the format, or None if it is not a valid IDX file. Independent of
    mru's reader: magic 0x0000<type><ndim> (ndim 1..32), ndim big-endian uint32 sizes, then exactly the data."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except Exception:
            return None
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in IDX_CODES or not 1 <= raw[3] <= 32:
        return None
    ndim, dtype = raw[3], IDX_CODES[raw[2]]
    header = 4 + 4 * ndim
    if len(raw) < header:
        return None
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims) * dtype.itemsize:
        return None
    return np.frombuffer(raw[header:], dtype=dtype).reshape(dims)


@st.composite
def idx_files(draw):
    """A valid IDX file (random type, 1-3 dims, maybe gzipped) that is then maybe truncated, extended, given
    a lying header byte or lying sizes (up to 2**32 - 1, whose product overflows 64 bits), or replaced by
    random bytes."""
    code = draw(st.sampled_from(sorted(IDX_CODES)))
    dims = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    data = draw(st.binary(min_size=math.prod(dims) * IDX_CODES[code].itemsize,
                          max_size=math.prod(dims) * IDX_CODES[code].itemsize))
    raw = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + data
    kind = draw(st.sampled_from(["valid", "truncate", "extend", "header_byte", "lie_dims", "random", "ndim"]))
    if kind == "truncate":
        raw = raw[:draw(st.integers(0, max(0, len(raw) - 1)))]
    elif kind == "extend":
        raw += draw(st.binary(min_size=1, max_size=8))
    elif kind == "header_byte":
        raw = bytearray(raw)
        raw[draw(st.integers(0, 3 + 4 * len(dims)))] = draw(st.integers(0, 255))
        raw = bytes(raw)
    elif kind == "lie_dims":
        lies = draw(st.lists(st.sampled_from([0, 1, 3, 2**16, 2**31, 2**32 - 1]), min_size=len(dims),
                             max_size=len(dims)))
        raw = raw[:4] + struct.pack(f">{len(dims)}I", *lies) + raw[4 + 4 * len(dims):]
    elif kind == "random":
        raw = draw(st.binary(max_size=64))
    elif kind == "ndim":
        raw = raw[:3] + bytes([draw(st.sampled_from([0, 33, 64, 100, 255]))]) + raw[4:]
    if draw(st.booleans()):
        raw = gzip.compress(raw, mtime=0)
        if draw(st.integers(0, 3)) == 0:
            raw = raw[:draw(st.integers(0, len(raw) - 1))]
    return raw


@fuzz(300)
@given(raw=idx_files())
# sizes whose product is 2**64: it wraps to 0 in 64-bit arithmetic, which an empty file would "match"
@example(raw=bytes([0, 0, 8, 4]) + struct.pack(">4I", 2**16, 2**16, 2**16, 2**16))
# more dimensions than numpy arrays have, with a consistent size
@example(raw=bytes([0, 0, 8, 100]) + struct.pack(">100I", *[1] * 100) + b"x")
def test_read_idx_random_files(tmp_path_factory, raw):
    """read_idx on files that are truncated, have trailing bytes, lie about their type, number of dimensions
    or sizes, are corrupt gzip, or are random bytes: the exact array, or a ValueError naming the file."""
    path = tmp_path_factory.getbasetemp() / "fuzz.idx"
    path.write_bytes(raw)
    expected = idx_spec(raw)
    got = check_call(lambda: read_idx(path), set() if expected is not None else {str(path)}, what="read_idx")
    if got is not None:
        assert got.shape == expected.shape and got.dtype == expected.dtype.newbyteorder("=")
        assert got.astype(expected.dtype).tobytes() == expected.tobytes()


def _mnist_files(folder, n=3, labels_n=None, label_value=None):
    images = np.arange(n * 784, dtype=np.uint8).reshape(n, 28, 28)
    labels = np.arange(labels_n if labels_n is not None else n, dtype=np.uint8) % 10
    if label_value is not None:
        labels[0] = label_value
    for stem, arr in (("train-images-idx3-ubyte", images), ("t10k-images-idx3-ubyte", images),
                      ("train-labels-idx1-ubyte", labels), ("t10k-labels-idx1-ubyte", labels)):
        raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
        (folder / stem).write_bytes(raw)


@fuzz(40)
@given(victim=st.sampled_from(["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                               "t10k-labels-idx1-ubyte"]),
       damage=st.sampled_from(["none", "truncate", "random", "labels_count", "label_value", "image_shape"]),
       cut=st.integers(0, 3000), seed=st.integers(0, 2**16))
def test_mnist_task_with_damaged_files(tmp_path_factory, victim, damage, cut, seed):
    """The sMNIST task over four small IDX files, one of them truncated, replaced by random bytes, holding
    the wrong number of labels, a label > 9, or images that are not 28x28: data, or an error naming it."""
    folder = tmp_path_factory.mktemp("mnist")
    _mnist_files(folder, labels_n=4 if damage == "labels_count" else None,
                 label_value=12 if damage == "label_value" else None)
    path = folder / victim
    if damage == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[:cut % len(raw)])
    elif damage == "random":
        path.write_bytes(np.random.default_rng(seed).bytes(cut % 200))
    elif damage == "image_shape":
        arr = np.zeros((3, 27, 29), dtype=np.uint8)
        (folder / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 3, 27, 29)
                                                         + arr.tobytes())
        victim = "train-images-idx3-ubyte"
    broken = damage != "none"
    task = get_task("smnist", data_dir=str(folder), val_size=1)
    expect = {victim, "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"} if damage in (
        "labels_count", "label_value") else {victim}
    d = check_call(lambda: task.dataset("train"), expect if broken else set(), what=f"{damage} {victim}")
    if d is not None:
        assert d.x.shape == (2, 784, 1) and d.y.shape == (2,)


@st.composite
def text_bytes(draw):
    kind = draw(st.sampled_from(["text", "long", "long", "bom", "binary", "cut_utf8", "empty"]))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    if kind == "empty":
        return b""
    text = draw(st.text(min_size=60 if kind in ("long", "bom") else 0, max_size=300))
    raw = text.encode("utf-8")
    if kind == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif kind == "cut_utf8":
        raw = (text + "é中").encode("utf-8")[:-1]  # a multi-byte character cut in half
    return raw


@fuzz(150)
@given(raw=text_bytes(), length=st.integers(1, 12))
@example(raw=("mémoire 中文 " * 12).encode(), length=3)
def test_charlm_random_files(tmp_path_factory, raw, length):
    """The character-LM loader on random bytes, invalid or truncated UTF-8, a byte-order mark, empty files and
    texts too short for the 90/5/5 % split: windows of the text, or a ValueError naming the file."""
    path = tmp_path_factory.getbasetemp() / "fuzz.txt"
    path.write_bytes(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.startswith("\ufeff"):
        text = text[1:]
    n = len(text) if text else 0
    cuts = (0, int(n * 0.9), int(n * (0.9 + 0.05)), n)  # 90/5/5 %, rounded down as documented
    valid = bool(text) and all(cuts[i + 1] - cuts[i] >= length + 1 for i in range(3))
    task = check_call(lambda: get_task("charlm", path=str(path), length=length),
                      set() if valid else {str(path)}, what="charlm")
    if task is None:
        return
    assert task.vocab == sorted(set(text))
    d = task.dataset("train")
    assert d.x.shape == (len(d), length) and len(d) == (cuts[1] - 1) // length
    assert torch.equal(d.x[:, 1:], d.y[:, :-1])
    assert task.decode(d.x[0]) == text[:length] and task.decode(d.y[0]) == text[1:length + 1]
    check_call(lambda: task.decode([len(task.vocab)]), {"token"}, what="decode out of range")
    check_call(lambda: task.decode([-1]), {"token"}, what="decode negative")


# ============================================================================================================
# deployment files: stream state and exported step
# ============================================================================================================

@pytest.fixture(scope="module")
def deploy_files(tmp_path_factory):
    """A stream state and an exported step of a small BMRU + LRU hybrid after three tokens."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(input_size=3, output_size=2, units=("bmru", "lru"), d_model=8,
                                      n_layers=1, head="mean")).eval()
    state = None
    for t in range(3):
        _, state = model.step(make_tensor((2, 3), seed=t), state)
    folder = tmp_path_factory.mktemp("deploy")
    state_path = save_stream_state(state, folder / "stream.safetensors")
    export_path = save_exported_step(model, folder / "step.pt2", batch=2)
    x = make_tensor((2, 3), seed=9)
    stepper = load_exported_step(export_path)
    y_ref = stepper.step(x)[0]
    return {"state": state, "state_raw": state_path.read_bytes(), "export_raw": export_path.read_bytes(),
            "x": x, "y": y_ref, "folder": folder, "stepper": stepper}


def _states_equal(a, b) -> bool:
    from torch.utils import _pytree as pytree

    la, sa = pytree.tree_flatten(a)
    lb, sb = pytree.tree_flatten(b)
    return sa == sb and all(torch.equal(u, v) if is_tensor(u) else u == v for u, v in zip(la, lb))


@st.composite
def damaged(draw, raw: bytes):
    """``raw`` truncated, with 1-3 bits flipped, with a run of bytes overwritten, extended, or replaced by
    random bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "flip", "overwrite", "extend", "random", "empty"]))
    if kind == "truncate":
        return raw[:draw(st.integers(0, len(raw) - 1))]
    if kind == "flip":
        b = bytearray(raw)
        for _ in range(draw(st.integers(1, 3))):
            b[draw(st.integers(0, len(b) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    if kind == "overwrite":
        start = draw(st.integers(0, len(raw) - 1))
        junk = draw(st.binary(min_size=1, max_size=16))
        return raw[:start] + junk + raw[start + len(junk):]
    if kind == "extend":
        return raw + draw(st.binary(min_size=1, max_size=32))
    if kind == "random":
        return draw(st.binary(max_size=256))
    return b""


@fuzz(200)
@given(data=st.data())
def test_load_stream_state_damaged_files(deploy_files, data):
    """load_stream_state on truncated, bit-flipped, overwritten, extended or random files: the saved state
    exactly (a change outside its content, e.g. appended bytes safetensors ignores), or a ValueError naming
    the file — never a silently different state."""
    raw = data.draw(damaged(deploy_files["state_raw"]))
    path = deploy_files["folder"] / "damaged.safetensors"
    path.write_bytes(raw)
    got = None
    try:
        got = load_stream_state(path)
    except ValueError as e:
        assert str(path) in str(e)
    except ALLOWED as e:
        pytest.fail(f"{type(e).__name__} for a damaged file: {e}")
    if got is not None:
        assert _states_equal(got, deploy_files["state"]), "a damaged file loaded as a different state"


@fuzz(40)
@given(state=st.recursive(st.sampled_from([object(), "text", b"bytes", 1j]),
                          lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("ab"), inner,
                                                                                       max_size=2), max_leaves=4))
def test_save_stream_state_rejects_unsaveable_leaves(tmp_path_factory, state):
    """A state holding something that is neither a tensor nor a plain number is refused (TypeError naming the
    leaf type) before any file is written."""
    from torch.utils import _pytree as pytree

    path = tmp_path_factory.getbasetemp() / "unsaveable.safetensors"
    leaves = pytree.tree_flatten(state)[0]
    names = {type(v).__name__ for v in leaves}
    check_call(lambda: save_stream_state(state, path), names if leaves else set(), what="save_stream_state")


@fuzz(25)
@given(data=st.data())
def test_load_exported_step_damaged_files(deploy_files, data):
    """load_exported_step on truncated, bit-flipped, overwritten, extended or random archives: a stepper
    whose step gives exactly the original outputs, or a ValueError naming the file."""
    raw = data.draw(damaged(deploy_files["export_raw"]))
    path = deploy_files["folder"] / "damaged.pt2"
    path.write_bytes(raw)
    try:
        stepper = load_exported_step(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    except ALLOWED as e:
        pytest.fail(f"{type(e).__name__} for a damaged file: {e}")
    y = stepper.step(deploy_files["x"])[0]
    assert torch.equal(y, deploy_files["y"]), "a damaged archive loaded and computes something else"


@fuzz(40)
@given(which=st.sampled_from(["x", "state"]), data=st.data())
def test_exported_step_inputs(deploy_files, which, data):
    """ExportedStepper.step with an input or state of another shape, dtype or layout: a ValueError or
    TypeError naming x_t or state, never torch's guard AssertionError."""
    stepper = deploy_files["stepper"]
    x, state = deploy_files["x"], stepper.initial_state()
    if which == "x":
        x = data.draw(slot((2, 3), dtypes=[torch.float64, torch.float16, torch.int64]), label="x")
        problems = set() if is_tensor(x) and x.shape == (2, 3) and x.dtype == torch.float32 \
            and x.device.type == "cpu" else {"x_t"}
    else:
        state = data.draw(st.sampled_from(["junk", "drop", "shape", "dtype", "python"]), label="state")
        problems = {"state"}
        if state == "junk":
            state = "state"
        elif state == "drop":
            state = stepper.initial_state()
            del state["count"]
        elif state == "shape":
            state = stepper.initial_state()
            state["sum"] = torch.zeros(3, 8)
        elif state == "dtype":
            state = stepper.initial_state()
            state["sum"] = state["sum"].double()
        else:  # the Python model's state (count an int) is accepted
            state, problems = deploy_files["state"], set()
    out = check_call(lambda: stepper.step(x, state), problems, what=f"ExportedStepper.step {which}")
    if out is not None:
        assert tuple(out[0].shape) == (2, 2) and all_finite(out[0]) == all_finite(x)


def test_exported_step_with_nan_input_is_visible(deploy_files):
    """The exported step carries the BMRU's NaN handling: a NaN token makes the output NaN."""
    stepper = deploy_files["stepper"]
    x = deploy_files["x"].clone()
    x[0, 0] = NAN
    y, _ = stepper.step(x)
    assert torch.isnan(y[0]).any()


# ============================================================================================================
# command line
# ============================================================================================================
#
# ``mru.cli.main(argv)`` in process, with argument lists drawn from a grammar of realistic mistakes. Every
# call must end in one of
#
# - exit 0: accepted, and (for a command that trains) a tiny run really ran;
# - exit 2: a user mistake, said on stderr in one line ``mru CMD: error: ...`` (argparse's own errors: its
#   usage lines, then ``mru CMD: error: ...``, raised as SystemExit(2)); the message names what the test broke;
# - exit 1 only where documented: the loss of a training run became NaN/Inf (``mru train: stopped: ...``);
#
# never an uncaught exception, a traceback on stderr, or a run written to the default folder ``runs/`` (every
# call runs in a scratch working directory, and every command that could train is given --out-dir).

#: settings that keep any accepted training call tiny (about 30 ms); drawn flags come after and override them
CLI_TINY = {"--length": "20", "--n-train": "16", "--n-val": "8", "--n-test": "8", "--d-model": "8",
            "--n-layers": "1", "--batch-size": "8", "--steps": "2", "--eval-every": "2", "--device": "cpu"}


def _flag(field: str) -> set:
    """The names a message may use for a TrainConfig field: its own, or its flag."""
    return {field, "--" + field.replace("_", "-")}


def _tiny(**replace) -> list:
    """CLI_TINY as arguments; ``replace`` (field=value, None drops the flag) changes some."""
    flags = dict(CLI_TINY)
    for field, value in replace.items():
        flags.pop("--" + field.replace("_", "-"), None)
        if value is not None:
            flags["--" + field.replace("_", "-")] = value
    return [a for kv in flags.items() for a in kv]


class _InDir:
    """Run a block in another working directory (contextlib.chdir is Python 3.11+)."""

    def __init__(self, path):
        self.path, self.old = path, None

    def __enter__(self):
        self.old = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc):
        os.chdir(self.old)


@pytest.fixture(scope="module")
def cli_cwd(tmp_path_factory):
    """The scratch working directory of every drawn command (a run in ./runs there is a failure)."""
    return tmp_path_factory.mktemp("cli_cwd")


def _cli_event(name: str) -> None:
    if currently_in_test_context():  # the pinned cases run outside hypothesis
        event(name)


def check_cli(argv, capsys, cwd, problems, *, may_diverge: bool = False, what: str = ""):
    """Run ``mru.cli.main(argv)`` in ``cwd`` and check the CLI contract above. ``problems``: None when the test
    does not predict the outcome, an empty set for a call that must succeed, else names of which the error
    message must mention one. Returns the exit code."""
    argv = [str(a) for a in argv]
    what = what or "mru " + " ".join(argv)
    _cli_event("CLI: invalid call" if problems else "CLI: valid call" if problems is not None else "CLI: either")
    capsys.readouterr()
    argparse_exit = False
    with _InDir(cwd):
        try:
            code = cli_main(argv)
        except SystemExit as e:  # argparse: bad flags and values
            code, argparse_exit = e.code, True
    out, err = capsys.readouterr()
    assert "Traceback" not in err, f"{what}: a traceback on stderr:\n{err}"
    assert not (cwd / "runs").exists(), f"{what}: wrote a run into the default folder ./runs"
    lines = err.strip().splitlines()
    if code == 0:
        assert not argparse_exit or any(a in argv for a in ("-h", "--help", "--version")), f"{what}: exit 0"
        assert not problems, f"{what}: accepted although {sorted(problems)} should be rejected"
        _cli_event("CLI: exit 0")
        return 0
    if code == 1 and not argparse_exit:
        # the one documented exit 1: the loss became NaN/Inf, the last good checkpoint is kept
        assert may_diverge, f"{what}: exit 1 for a call that cannot diverge: {err}"
        assert len(lines) == 1 and re.match(r"mru (train|compare): stopped: the loss became \S+ at step \d+", err), \
            f"{what}: exit 1 without the documented message: {err}"
        _cli_event("CLI: exit 1 (diverged)")
        return 1
    assert code == 2, f"{what}: exit code {code!r}; stderr: {err}"
    assert lines, f"{what}: exit 2 with nothing on stderr"
    command = argv[0] if argv and not argv[0].startswith("-") else None
    if argparse_exit or (lines[0].startswith("usage:") and command is None):
        # argparse's form: usage lines, then one error line
        assert lines[0].startswith("usage:") and re.match(r"mru( [\w-]+)*: error: \S", lines[-1]), \
            f"{what}: malformed argparse error: {err}"
        message = lines[-1]
    else:
        assert len(lines) == 1, f"{what}: a usage error of {len(lines)} lines: {err}"
        assert re.match(rf"mru {re.escape(command)}: error: \S", lines[0]), f"{what}: malformed error line: {err}"
        message = lines[0]
    assert problems is None or problems, f"{what}: valid call rejected: {message}"
    if problems:
        assert mentions(message, problems), f"{what}: message does not name any of {sorted(problems)}: {message}"
    _cli_event("CLI: exit 2")
    return 2


def cli_settings(n: int):
    """fuzz(n) for the CLI tests, which reuse pytest's capsys (read and cleared before every call)."""
    return settings(fuzz(n), suppress_health_check=[*fuzz(n).suppress_health_check,
                                                    HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, cli_cwd):
    """One tiny real run (a BMRU on the latch task, length 20, d_model 8, 4 steps), a file of stream
    steps and a stream state saved from it, and a plain file; damaged copies are made per example."""
    folder = tmp_path_factory.mktemp("cli_files")
    run = folder / "run"
    with _InDir(cli_cwd):
        assert cli_main(["train", "--task", "latch", "--model", "bmru", *_tiny(steps="4"), "--quiet",
                         "--out-dir", str(run)]) == 0
        steps = folder / "steps.txt"
        steps.write_text("1 0 1\n0 0 0\n0 1 0\n")
        state = folder / "state.safetensors"
        assert cli_main(["stream", str(run), "--input", str(steps), "--state-out", str(state)]) == 0
    plain = folder / "plain.txt"
    plain.write_text("not a folder\n")
    from mru.train import load_run

    model = load_run(run, "auto", device="cpu")[0]
    width = [m for m in model.modules() if isinstance(m, (BMRU, CMRU))][0].hidden_size
    return {"run": run, "steps": steps, "state": state, "plain": plain, "bmru_width": width}


# -- names, commands and flags ---------------------------------------------------------------------------------

CLI_TASKS_VALID = ["latch", "LATCH", "copy_first", "copy-first", "adding"]
CLI_TASKS_BAD = ["latc", "lach", "copyfirst", "", "mnist", "latch+copy_first", "charlm"]  # charlm: no path
CLI_MODELS_VALID = ["bmru", "BMRU", "lru", "mingru", "bmru+lru", "cmru+mingru", "gru"]
CLI_MODELS_BAD = ["bmr", "gruu", "bmru+lruu", "bmru+", "+lru", "", "transformer", "bmru,lru"]
CLI_COMMAND_TYPOS = ["trian", "evl", "modles", "Train", "", "compre", "task"]
#: unknown, misspelt or ambiguous flags (argparse accepts unambiguous prefixes such as --step for --steps)
CLI_BAD_FLAGS = [("--lenght", "20"), ("--d_model", "8"), ("--learning-rate", "0.1"), ("--eps", "0.5"),
                 ("--task-options", "write_prob=0.1")]


def _name_problems(name, valid, kind) -> set:
    """What a message about a bad task or model name may mention: the name, a '+'-part of a model, the kind."""
    if name in valid:
        return set()
    if kind == "task":
        return {"task"} | ({name} if name.strip() else set())
    return {"model", "unit"} | ({name} if name.strip() else set()) | {p for p in name.split("+") if p}


@cli_settings(70)
@given(data=st.data())
def test_cli_commands_names_and_flags(capsys, cli_cwd, tmp_path_factory, data):
    """Unknown and misspelt subcommands, task names ('latc', 'lach', '', 'charlm' without its file) and model
    names ('bmr', 'gruu', 'bmru+lruu', 'bmru+', '+lru'); unknown, misspelt or ambiguous flags; missing
    positional arguments; mru tasks/models/demo/bench with bad arguments. Valid training calls run tiny."""
    command = data.draw(st.sampled_from(["train"] * 4 + ["compare"] * 2 + ["tasks", "models", "demo", "bench",
                                                                          "eval", "plot", "stream", "none", "typo"]),
                        label="command")
    problems: set = set()
    out_dir = tmp_path_factory.mktemp("cli_names")
    if command == "none":
        argv, problems = [], {"command"}
    elif command == "typo":
        typo = data.draw(st.sampled_from(CLI_COMMAND_TYPOS))
        argv, problems = [typo, "--steps", "2"], {"COMMAND", "command"}
    elif command in ("eval", "plot", "stream"):  # the required positional argument left out
        argv, problems = [command], {"RUN_DIR", "KIND", "run"}
    elif command == "train":
        task = data.draw(st.sampled_from(CLI_TASKS_VALID + CLI_TASKS_BAD), label="task")
        model = data.draw(st.sampled_from(CLI_MODELS_VALID + CLI_MODELS_BAD), label="model")
        argv = ["train", "--task", task, "--model", model, *_tiny(), "--quiet", "--out-dir", out_dir]
        problems = _name_problems(task, CLI_TASKS_VALID, "task") | _name_problems(model, CLI_MODELS_VALID, "model")
        if task == "charlm":
            problems |= {"path", "charlm"}
    elif command == "compare":
        tasks = data.draw(st.lists(st.sampled_from(CLI_TASKS_VALID[:3] + CLI_TASKS_BAD[:4]), min_size=1,
                                   max_size=2), label="tasks")
        models = data.draw(st.lists(st.sampled_from(CLI_MODELS_VALID[:5] + CLI_MODELS_BAD[:5]), min_size=1,
                                    max_size=2), label="models")
        argv = ["compare", "--tasks", ",".join(tasks), "--models", ",".join(models), *_tiny(),
                "--quiet", "--no-plots", "--eval-tokens", "100", "--out-dir", out_dir]
        if not any(t.strip() for t in tasks) or not any(m.strip() for m in models):  # e.g. --tasks ','
            problems |= {"--tasks", "--models"}
        for t in (t for t in tasks if t.strip()):
            problems |= _name_problems(t, CLI_TASKS_VALID, "task")
        for m in (m for m in models if m.strip()):
            problems |= _name_problems(m, CLI_MODELS_VALID, "model")
    elif command == "tasks":
        name = data.draw(st.sampled_from([None, *CLI_TASKS_VALID, *CLI_TASKS_BAD, "smnist", "charlm"]))
        argv = ["tasks"] + ([name] if name is not None else [])
        valid = name is None or name.lower().replace("-", "_") in TASKS
        problems = set() if valid else {"task"} | ({name} if name else set())
    elif command == "models":
        argv = ["models"] + data.draw(st.sampled_from([[], [], ["bmru"]]))
        problems = {"bmru"} if len(argv) > 1 else set()
    elif command == "demo":
        steps = data.draw(st.sampled_from(["10", "0", "-1", "1e3", "abc", "2.5"]), label="demo steps")
        batch = data.draw(st.sampled_from(["2", "0", "x"]), label="demo batch")
        argv = ["demo", "--steps", steps, "--batch", batch]
        ok = lambda t: t.lstrip("-").isdigit() and int(t) >= 1  # noqa: E731
        problems = set() if ok(steps) and ok(batch) else {"--steps", "--batch"}
    else:  # bench: only with a bad suite or device (a valid one would benchmark)
        suites = data.draw(st.sampled_from(["sacn", "scan,nope", "all"]))
        device = data.draw(st.sampled_from(["cpu", "gpu", "cuda:0"]))
        argv, problems = ["bench", "--suites", suites, "--device", device, "--quick", "--out", out_dir], \
            {"suite", "--device", "sacn", "nope", "all"}
    if argv and argv[0] in ("train", "compare") and data.draw(st.integers(0, 4)) == 0:
        bad = data.draw(st.sampled_from(CLI_BAD_FLAGS), label="bad flag")
        argv = [*argv, *bad]
        problems = problems | {bad[0]}
    check_cli(argv, capsys, cli_cwd, problems)


# -- numbers ---------------------------------------------------------------------------------------------------

#: integer TrainConfig fields -> smallest valid value (the latch task needs a length >= 2)
CLI_INT_FIELDS = {"length": 2, "n_train": 1, "n_val": 1, "n_test": 1, "d_model": 1, "n_layers": 1,
                  "batch_size": 1, "steps": 1, "epochs": 1, "eval_every": 1, "eval_batch_size": 1,
                  "warmup": 0, "seed": 0, "eps_hold": 0, "eps_anneal_steps": 0}
#: float TrainConfig fields -> the documented range
CLI_FLOAT_FIELDS = {
    "lr": lambda v: v > 0, "min_lr": lambda v: v >= 0, "weight_decay": lambda v: v >= 0,
    "grad_clip": lambda v: v >= 0, "mlp_ratio": lambda v: v >= 0, "dropout": lambda v: 0 <= v < 1,
    "eps_start": lambda v: 0 <= v <= 1, "eps_end": lambda v: 0 <= v <= 1, "gamma_start": lambda v: v > 0,
    "gamma_end": lambda v: v > 0, "write_rate_penalty": lambda v: v >= 0, "target_metric": lambda v: True}
CLI_INT_TEXTS = ["0", "-1", "1", "2", "3", "2.5", "1e1", "1_0", "3.0", "1e400", "nan", "inf", "-inf", "abc", "",
                 "0x10"]
CLI_FLOAT_TEXTS = ["0", "-0.5", "0.5", "1", "1.5", "2", "1e9", "1e-300", "nan", "inf", "-inf", "1e400", "abc",
                   "", "3e-3", "0.999"]


def _cli_int(text):
    """The value an integer flag documents for ``text`` (1e3 and 1_000 accepted), or None."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _cli_float(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None  # every float field must be finite


@cli_settings(90)
@given(data=st.data())
def test_cli_numeric_flags(capsys, cli_cwd, tmp_path_factory, data):
    """1-3 numeric TrainConfig flags of mru train / mru compare set to negative, zero, NaN, Inf, 1e400, 'abc',
    '', floats for integers, hex, and absurd but valid values (--lr 1e9, --gamma-start 1e9: accepted, or the
    documented exit 1 if the loss diverges); --steps together with --epochs; --min-lr above --lr."""
    compare = data.draw(st.integers(0, 3)) == 0
    fields = data.draw(st.lists(st.sampled_from(sorted(CLI_INT_FIELDS) + sorted(CLI_FLOAT_FIELDS)), min_size=1,
                                max_size=3, unique=True), label="fields")
    if compare:
        fields = [f for f in fields if f != "seed"] or ["lr"]  # compare has --seeds, and --seed abbreviates it
    model = data.draw(st.sampled_from(["bmru", "lru", "bmru+lru"]), label="model")
    values, problems, may_diverge = {}, set(), False
    for field in fields:
        if field in CLI_INT_FIELDS:
            text = data.draw(st.sampled_from(CLI_INT_TEXTS), label=field)
            value = _cli_int(text)
            if value is None or value < CLI_INT_FIELDS[field]:
                problems |= _flag(field)
        else:
            pool = [t for t in CLI_FLOAT_TEXTS if not (field == "mlp_ratio" and t == "1e9")]  # 8e9 weights
            text = data.draw(st.sampled_from(pool), label=field)
            value = _cli_float(text)
            if value is None or not CLI_FLOAT_FIELDS[field](value):
                problems |= _flag(field)
            elif value >= 1 and field not in ("dropout", "eps_start", "eps_end", "target_metric"):
                may_diverge = True
        values[field] = text
    keep_steps = "epochs" not in values or data.draw(st.booleans(), label="keep --steps")
    if "epochs" in values and keep_steps and "steps" not in values:
        problems |= {"steps", "epochs"}
    if "epochs" in values and "steps" in values and not ({"--steps", "--epochs"} & problems):
        problems |= {"steps", "epochs"}
    lr = _cli_float(values.get("lr", "3e-3"))
    min_lr = _cli_float(values.get("min_lr", "3e-4"))
    if lr is not None and min_lr is not None and lr > 0 and min_lr >= 0 and min_lr > lr:
        problems |= {"min_lr", "lr"}
    base = _tiny(**({} if keep_steps else {"steps": None}))
    drawn = [a for f, t in values.items() for a in ("--" + f.replace("_", "-"), t)]
    out_dir = tmp_path_factory.mktemp("cli_numbers")
    if compare:
        argv = ["compare", "--tasks", "latch", "--models", model, *base, *drawn, "--quiet", "--no-plots",
                "--eval-tokens", "100", "--out-dir", out_dir]
    else:
        argv = ["train", "--task", "latch", "--model", model, *base, *drawn, "--quiet", "--out-dir", out_dir]
    check_cli(argv, capsys, cli_cwd, problems, may_diverge=may_diverge)


# -- KEY=VALUE options -------------------------------------------------------------------------------------------

#: --task-option values for the latch task -> the names an error must mention (empty: valid)
CLI_TASK_OPTIONS = [
    ("write_prob=0.1", set()), ("read_prob=0.5", set()), ("scored=all", set()), (" write_prob = 0.05 ", set()),
    ("write_prob", {"--task-option"}), ("=0.1", {"--task-option"}), ("write_prb=0.1", {"write_prb"}),
    ("WRITE_PROB=0.1", {"WRITE_PROB"}), ("write_prob=abc", {"write_prob"}), ("write_prob=2", {"write_prob"}),
    ("write_prob=NaN", {"write_prob"}), ("write_prob=[1]", {"write_prob"}), ("write_prob=", {"write_prob"}),
    ("write_prob==0.1", {"write_prob"}), ("scored=some", {"scored"}), ("write_prob=0.6", set()),
]
#: --unit-option values -> (names an error must mention whatever the model, names if the model has the unit)
CLI_UNIT_OPTIONS = [
    ("lru.r_min=0.9", set(), set()), ("lru.r_max=0.999", set(), set()), ("bmru.gamma=2", set(), set()),
    ("bmru.eps=0.5", set(), set()), ("BMRU.gamma=3", set(), set()),
    ("lru.rmin=0.9", {"rmin"}, set()), ("lruu.r_min=0.9", {"lruu"}, set()), ("lru=0.9", {"--unit-option"}, set()),
    ("lru.=1", {"--unit-option"}, set()), (".r_min=0.5", {"unit"}, set()), ("lru.r_min", {"--unit-option"}, set()),
    ("bmru.hidden_size=3", {"hidden_size"}, set()), ("gru.eps=0.5", {"eps"}, set()),
    ("lru.r_min=abc", set(), {"r_min"}), ("lru.r_min=2", set(), {"r_min"}), ("lru.max_phase=-1", set(), {"max_phase"}),
    ("bmru.eps=2", set(), {"eps"}), ("bmru.gamma=0", set(), {"gamma"}), ("bmru.gamma=-1", set(), {"gamma"}),
    ("bmru.eps=Infinity", set(), {"eps"}), ("bmru.learn_initial_state=yes", set(), {"learn_initial_state"}),
]


@cli_settings(50)
@given(model=st.sampled_from(["bmru", "lru", "bmru+lru"]),
       task_options=st.lists(st.sampled_from(CLI_TASK_OPTIONS), max_size=2),
       unit_options=st.lists(st.sampled_from(CLI_UNIT_OPTIONS), max_size=2),
       compare=st.sampled_from([False, False, False, True]))
def test_cli_task_and_unit_options(capsys, cli_cwd, tmp_path_factory, model, task_options, unit_options, compare):
    """--task-option and --unit-option: a missing '=' or '.', an empty key, unknown options and units, values
    of the wrong type or out of range (checked only for the units the model has), write_prob + read_prob > 1."""
    if not task_options and not unit_options:
        task_options = [CLI_TASK_OPTIONS[4]]
    units = set(model.split("+"))
    problems = set()
    # the options form a table: the last value given for a key wins
    last_task, last_unit = {}, {}
    for text, names in task_options:
        key, sep, _ = text.partition("=")
        if not sep or not key.strip():  # not KEY=VALUE: argparse refuses it
            problems |= names
        else:
            last_task[key.strip()] = (text, names)
    effective = {"write_prob": 0.02, "read_prob": 0.1}  # the latch defaults
    for key, (text, names) in last_task.items():
        problems |= names
        if not names and key in effective:
            effective[key] = float(text.partition("=")[2])
    if not problems and effective["write_prob"] + effective["read_prob"] > 1:
        problems |= {"write_prob", "read_prob"}
    for text, always, if_used in unit_options:
        key = text.partition("=")[0]
        unit, dot, option = key.partition(".")
        if "=" not in text or not dot or not option:
            problems |= always
        else:
            last_unit[(unit.lower(), option)] = (always, if_used)
    for (unit, _), (always, if_used) in last_unit.items():
        problems |= always | (if_used if unit in units else set())
    argv = [a for text, _ in task_options for a in ("--task-option", text)] + \
           [a for text, _, _ in unit_options for a in ("--unit-option", text)]
    out_dir = tmp_path_factory.mktemp("cli_options")
    if compare:
        argv = ["compare", "--tasks", "latch", "--models", model, *_tiny(), *argv, "--quiet", "--no-plots",
                "--eval-tokens", "100", "--out-dir", out_dir]
    else:
        argv = ["train", "--task", "latch", "--model", model, *_tiny(), *argv, "--quiet", "--out-dir", out_dir]
    check_cli(argv, capsys, cli_cwd, problems)


# -- config files --------------------------------------------------------------------------------------------

#: (key, value, names an error must mention); the flags of CLI_TINY override a file's length, steps, ...
CLI_CONFIG_ENTRIES = [
    ("lr", 0.01, set()), ("warmup", 0, set()), ("dropout", 0.1, set()), ("model", "lru", set()),
    ("model", "bmru+lru", set()), ("norm", "rms", set()), ("combine", "concat", set()),
    ("unit_options", {"lru": {"r_min": 0.5}}, set()), ("task_options", {"write_prob": 0.1}, set()),
    ("eps_end", 0.0, set()), ("bf16", False, set()), ("weight_decay", 0, set()), ("target_metric", 0.99, set()),
    ("steps", 3, set()), ("d_model", 64, set()), ("steps", "many", set()), ("device", "gpu", set()),
    ("stpes", 3, {"stpes"}), ("lenght", 20, {"lenght"}), ("d-model", 8, {"d-model"}), ("lr", "fast", {"lr"}),
    ("lr", NAN, {"lr"}), ("lr", INF, {"lr"}), ("warmup", 1.5, {"warmup"}), ("dropout", True, {"dropout"}),
    ("norm", 5, {"norm"}), ("task_options", 5, {"task_options"}), ("unit_options", {"lru": 5}, {"lru"}),
    ("unit_options", {"lruu": {}}, {"lruu"}), ("bf16", "yes", {"bf16"}), ("model", 5, {"model"}),
    ("model", "gruu", {"gruu"}), ("task", "latc", {"latc"}), ("combine", "add", {"combine"}),
    ("eps_start", 2, {"eps_start"}), ("gamma_start", 0, {"gamma_start"}),
    ("task_options", {"write_prb": 0.1}, {"write_prb"}), ("out_dir", 5, {"out_dir"}), ("out_dir", "", {"out_dir"}),
    ("out_dir", "<fresh>", set()),
]
CLI_OVERRIDDEN = {"length", "n_train", "n_val", "n_test", "d_model", "n_layers", "batch_size", "steps",
                  "eval_every", "device"}  # given as flags by every call (CLI_TINY)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_toml(v) for v in value) + "]"


@cli_settings(60)
@given(data=st.data())
def test_cli_config_files(capsys, cli_cwd, tmp_path_factory, data):
    """--config files that are missing, a folder, empty, not TOML/JSON, binary, of another suffix, JSON that is
    a list or null, valid TOML/JSON (also under a [train] table) with unknown keys, values of the wrong type or
    range; the flags given override the file (a bad value the flags override is no error); mru compare ignores
    the file's task, model, seed and out_dir."""
    folder = tmp_path_factory.mktemp("cli_config")
    kind = data.draw(st.sampled_from(["toml"] * 4 + ["json"] * 2 + ["toml_train", "json_train", "empty_toml",
                                      "empty_json", "missing", "folder", "binary", "not_toml", "not_a_table",
                                      "suffix", "empty_arg"]), label="kind")
    compare = data.draw(st.integers(0, 4)) == 0
    entries = dict((k, (v, names)) for k, v, names in data.draw(
        st.lists(st.sampled_from(CLI_CONFIG_ENTRIES), min_size=1, max_size=3), label="entries"))
    if "out_dir" in entries and entries["out_dir"][0] == "<fresh>":
        entries["out_dir"] = (str(folder / "from_file"), set())
    table = {k: v for k, (v, _) in entries.items()}
    path, problems = folder / "run.toml", set()
    is_table = kind in ("toml", "toml_train", "json", "json_train")
    pass_out_dir = compare or not is_table or "out_dir" not in entries or data.draw(st.booleans(), label="--out-dir")
    if is_table:
        ignored = CLI_OVERRIDDEN | ({"out_dir"} if pass_out_dir else set()) | \
            ({"task", "model", "seed", "out_dir"} if compare else set())
        for key, (_, names) in entries.items():
            if key not in ignored:
                problems |= names
        if kind.startswith("toml"):
            text = "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())
            path.write_text("[train]\n" + text if kind == "toml_train" else text)
        else:
            path = folder / "run.json"
            path.write_text(json.dumps({"train": table} if kind == "json_train" else table))
    elif kind == "empty_toml":
        path.write_text("")
    elif kind == "empty_json":
        path, problems = folder / "run.json", {str(folder / "run.json")}
        path.write_text("")
    elif kind == "missing":
        path, problems = folder / "nope.toml", {str(folder / "nope.toml")}
    elif kind == "folder":
        path.mkdir()
        problems = {str(path)}
    elif kind == "binary":
        path = folder / data.draw(st.sampled_from(["run.toml", "run.json"]))
        path.write_bytes(b"\xff\xfe" + data.draw(st.binary(max_size=40), label="bytes"))
        problems = {str(path)}
    elif kind == "not_toml":
        path.write_text(data.draw(st.sampled_from(["task = \n", "[train\n", "steps: 3\n", "lr = 0.1\nlr = 0.2\n",
                                                   "{\"lr\": 0.1}\n"])))
        problems = {str(path)}
    elif kind == "not_a_table":
        path = folder / "run.json"
        path.write_text(data.draw(st.sampled_from(["[1, 2]", "null", "3", "\"lr\"", "{\"train\": [1]}"])))
        problems = {str(path), "train"}
    elif kind == "suffix":
        path = folder / data.draw(st.sampled_from(["run.yaml", "run.txt", "run", "run.toml.bak"]))
        path.write_text("lr = 0.1\n")
        problems = {str(path)}
    else:
        path, problems = "", {"--config"}
    out_dir = folder / "run_out"
    out = ["--out-dir", out_dir] if pass_out_dir else []
    if compare:
        argv = ["compare", "--tasks", "latch", "--models", "bmru", "--config", path, *_tiny(), "--quiet",
                "--no-plots", "--eval-tokens", "100", *out]
    else:
        argv = ["train", "--config", path, *_tiny(), "--quiet", *out]
    check_cli(argv, capsys, cli_cwd, problems)


# -- run folders: eval, stream, plot, resume ---------------------------------------------------------------------

CLI_RUN_DAMAGE = ["missing", "plain_file", "empty", "truncate_tensors", "flip_tensors", "delete_tensors",
                  "truncate_json", "json_list", "foreign_json", "no_config", "tensors_not_a_name", "schedule_junk",
                  "config_changed", "config_invalid", "metrics_junk"]


def _pick(data, valid, invalid, clean, label):
    """A valid choice when ``clean``, else any (valid ones weighted as much as the invalid ones together)."""
    pool = list(valid) if clean else list(valid) * max(1, len(invalid) // len(valid)) + list(invalid)
    return data.draw(st.sampled_from(pool), label=label)


def _damaged_run(data, cli_files, folder, clean, exclude=()):
    """A copy of the tiny run in ``folder``/run with one kind of damage, applied alike to both checkpoints
    (best and last); returns (path, damage, problems for a command that loads the checkpoint)."""
    import shutil

    run = folder / "run"
    damage = _pick(data, ["none"], [d for d in CLI_RUN_DAMAGE if d not in exclude], clean, "damage")
    if damage == "missing":
        return run, damage, {str(run)}
    if damage == "plain_file":
        run.write_text("x")
        return run, damage, {str(run)}
    if damage == "empty":
        run.mkdir()
        return run, damage, {str(run)}
    shutil.copytree(cli_files["run"], run)
    jsons = [run / "best.json", run / "last.json"]
    if damage in ("truncate_tensors", "flip_tensors", "delete_tensors"):
        for t in run.glob("*.safetensors"):
            raw = t.read_bytes()
            if damage == "truncate_tensors":
                t.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1), label="cut")])
            elif damage == "flip_tensors":
                b = bytearray(raw)
                b[data.draw(st.integers(0, len(b) - 1), label="byte")] ^= 1 << data.draw(st.integers(0, 7))
                t.write_bytes(bytes(b))
            else:
                t.unlink()
    elif damage == "truncate_json":
        cut = data.draw(st.floats(0, 0.99), label="cut")
        for j in jsons:
            raw = j.read_bytes()
            j.write_bytes(raw[:int(cut * len(raw))])
    elif damage == "metrics_junk":  # only 'mru plot curves' reads it: a torn or foreign line is skipped
        junk = data.draw(st.sampled_from([b"5\n[1]\n", b'{"step": 1, "tra', b"\xff\xfe\x00", b"", b"null\n"]))
        (run / "metrics.jsonl").write_bytes(junk)
        return run, damage, set()
    elif damage != "none":
        junk_tensors = data.draw(st.sampled_from([5, None, "/etc/hostname", "../run/x.safetensors", "", ["a"]]))
        junk_schedule = data.draw(st.sampled_from(["x", [1], {"eps": "a"}, {"eps": 2.0}, {"gamma": -1.0}]))
        for j in jsons:
            state = json.loads(j.read_text())
            if damage == "json_list":
                state = [state]
            elif damage == "foreign_json":
                state = {"format": "something-else", "version": 1}
            elif damage == "no_config":
                del state["config"]
            elif damage == "tensors_not_a_name":
                state["tensors"] = junk_tensors
            elif damage == "schedule_junk":
                state["schedule"] = junk_schedule
            elif damage == "config_changed":  # a config that no longer fits the saved weights
                state["config"]["d_model"] = 9
            elif damage == "config_invalid":
                state["config"].update(data.draw(st.sampled_from([{"task": "nope"}, {"lr": -1}, {"bogus": 1},
                                                                  {"model": "gruu"}])))
            j.write_text(json.dumps(state))
    return run, damage, (set() if damage == "none" else {str(run)})


def _eval_args(data, clean):
    """Flags of mru eval and the names an error must mention (empty: valid for the tiny run)."""
    args, problems = [], set()
    which = _pick(data, ["auto", "best", "last"], ["newest"], clean, "--checkpoint")
    split = _pick(data, ["test", "val", "train"], ["TEST"], clean, "--split")
    args += ["--checkpoint", which, "--split", split]
    problems |= ({"--checkpoint"} if which == "newest" else set()) | ({"--split"} if split == "TEST" else set())
    lengths = _pick(data, ["none", "length", "factor"], ["both"], clean, "lengths")
    if lengths in ("length", "both"):
        text = _pick(data, ["20", "20,40", "2", "1e1"], ["1", "0", "2.5", "1e400", "nan", "abc", ""], clean,
                     "--length")
        args += ["--length", text]
        values = [_cli_int(v) for v in text.split(",") if v.strip()]
        if not values or None in values or min(values) < 2:  # the latch task needs a length >= 2
            problems |= {"--length", "length"}
    if lengths in ("factor", "both"):
        text = _pick(data, ["1", "0.5,2"], ["0", "-1", "nan", "inf", "1e400", "abc", "1e-9", ""], clean, "--factor")
        args += ["--factor", text]
        values = [_cli_float(v) for v in text.split(",") if v.strip()]
        if not values or None in values or min(values) <= 0:
            problems |= {"--factor"}
        elif min(max(1, round(f * 20)) for f in values) < 2:
            problems |= {"length"}
    if lengths == "both":
        problems |= {"--length", "--factor"}
    if data.draw(st.booleans(), label="set --n"):
        text = _pick(data, ["8", "1"], ["0", "-3", "abc", "2.5"], clean, "--n")
        args += ["--n", text]
        problems |= set() if text in ("8", "1") else {"--n"}
    if data.draw(st.booleans(), label="set --batch-size"):
        text = _pick(data, ["4"], ["0", "-1", "x"], clean, "--batch-size")
        args += ["--batch-size", text]
        problems |= set() if text == "4" else {"--batch-size"}
    if data.draw(st.booleans()):
        args.append("--json")
    return args, problems


def _stream_args(data, cli_files, folder, clean):
    args, problems = [], set()
    kind = _pick(data, ["good", "nan"], ["empty", "count", "words", "binary", "missing", "folder"], clean, "--input")
    path = folder / "steps.txt"
    text = {"good": b"1 0 1\n\n0 0 0\n", "empty": b"", "count": b"1 0\n", "words": b"a b c\n",
            "binary": b"\xff\xfe\x00\x01", "nan": b"nan 0 1\n0 inf 0\n"}.get(kind)
    if text is not None:
        path.write_bytes(text)
    elif kind == "folder":
        path = folder
    args += ["--input", path]
    problems |= {"count": {"line"}, "words": {"line"}, "binary": {str(path)}, "missing": {str(path)},
                 "folder": {str(path)}}.get(kind, set())
    state_in = _pick(data, ["none", "good"], ["garbage", "missing", "empty_arg"], clean, "--state-in")
    if state_in == "good":
        args += ["--state-in", cli_files["state"]]
    elif state_in == "garbage":
        junk = folder / "junk.safetensors"
        junk.write_bytes(data.draw(st.binary(max_size=64)))
        args += ["--state-in", junk]
        problems |= {str(junk)}
    elif state_in == "missing":
        args += ["--state-in", folder / "nope.safetensors"]
        problems |= {str(folder / "nope.safetensors")}
    elif state_in == "empty_arg":
        args += ["--state-in", ""]
        problems |= {"--state-in"}
    state_out = _pick(data, ["none", "fresh"], ["folder", "under_file", "empty_arg"], clean, "--state-out")
    if state_out == "fresh":
        args += ["--state-out", folder / "out" / "state.safetensors"]
        if kind == "empty":
            problems |= {"state"}  # no step was read: no state to save
    elif state_out != "none":
        args += ["--state-out", {"folder": folder, "under_file": cli_files["plain"] / "s.safetensors",
                                 "empty_arg": ""}[state_out]]
        problems |= {"--state-out"}
    return args, problems


def _out_args(data, cli_files, folder, clean):
    kind = _pick(data, ["png", "no_suffix", "new_folder"], ["empty", "folder", "under_file"], clean, "--out")
    path = {"png": folder / "fig.png", "no_suffix": folder / "fig", "new_folder": folder / "a" / "b" / "fig.png",
            "empty": "", "folder": folder, "under_file": cli_files["plain"] / "fig.png"}[kind]
    return ["--out", path], (set() if kind in ("png", "no_suffix", "new_folder") else {"--out"})


def _plot_args(data, cli_files, run, folder, clean):
    """(argv after 'plot', problems, whether the run's checkpoint (True) or metrics ('curves') are read)."""
    kind = data.draw(st.sampled_from(["raster", "hysteresis", "hysteresis_beta", "curves", "bifurcation"]),
                     label="plot")
    out, problems = _out_args(data, cli_files, folder, clean)
    if kind == "raster":
        index = _pick(data, ["0", "1"], ["-1", "x"], clean, "--index")
        layer = _pick(data, ["0"], ["1", "-1"], clean, "--layer")
        length = _pick(data, [None, "20", "2"], ["1", "0"], clean, "--length")
        args = ["raster", run, "--index", index, "--layer", layer] + (["--length", length] if length else [])
        problems |= ({"--index"} if index in ("-1", "x") else set()) | ({"--layer"} if layer != "0" else set()) \
            | ({"--length", "length"} if length in ("1", "0") else set())
        return args + out, problems, True
    if kind == "hysteresis":
        width = cli_files["bmru_width"]
        units = _pick(data, ["0,1,2", "0", str(width - 1)], [str(width), "-1", "a", "", "0,,1"], clean, "--units")
        parsed = [_cli_int(u) for u in units.split(",") if u.strip()]
        ok = parsed and None not in parsed and all(0 <= u < width for u in parsed)
        return ["hysteresis", run, "--units", units] + out, problems | (set() if ok else {"--units"}), True
    if kind == "hysteresis_beta":
        beta = _pick(data, ["0.5,1,2", "1", "0", "-1"], ["nan", "inf", "1e400", "", "a"], clean, "--beta")
        values = [_cli_float(b) for b in beta.split(",") if b.strip()]
        ok = values and None not in values
        return ["hysteresis", "--beta", beta] + out, problems | (set() if ok else {"--beta"}), False
    if kind == "curves":
        return ["curves", run, run] + out, problems, "curves"
    iterations = _pick(data, ["1", "1,3"], ["0", "-1", "a", "", "2.5"], clean, "--iterations")
    gain = _pick(data, ["2", "1.5", "1e9"], ["1", "0.5", "nan", "inf", "1e400", "abc"], clean, "--gain")
    parsed = [_cli_int(i) if "." not in i else None for i in iterations.split(",") if i.strip()]
    problems |= set() if parsed and None not in parsed and min(parsed) >= 1 else {"--iterations"}
    g = _cli_float(gain)
    problems |= set() if g is not None and g > 1 else {"--gain"}
    return ["bifurcation", "--iterations", iterations, "--gain", gain] + out, problems, False


@cli_settings(90)
@given(data=st.data(), command=st.sampled_from(["eval"] * 4 + ["stream"] * 3 + ["plot"] * 2),
       clean=st.sampled_from([True, False, False]))
def test_cli_run_folders(capsys, cli_cwd, cli_files, tmp_path_factory, data, command, clean):
    """mru eval / stream / plot on a tiny real run and on copies that are missing, a plain file, empty, or have
    truncated, bit-flipped or deleted tensors, a truncated or foreign checkpoint JSON, one without its config,
    naming a tensor file outside the folder, with a junk schedule, a config that does not fit the weights or is
    invalid, or junk metrics; with bad flags of each command (lengths, factors, splits, counts, stream input
    files and states, plot indices, layers, units, thresholds, gains and output paths)."""
    folder = tmp_path_factory.mktemp("cli_runs")
    run, damage, run_problems = _damaged_run(data, cli_files, folder, clean)
    if command == "eval":
        args, problems = _eval_args(data, clean)
        argv, loads = ["eval", run, *args], True
    elif command == "stream":
        args, problems = _stream_args(data, cli_files, folder, clean)
        argv, loads = ["stream", run, *args], True
    else:
        args, problems, loads = _plot_args(data, cli_files, run, folder, clean)
        argv = ["plot", *args]
    if loads == "curves":  # reads metrics.jsonl only
        if damage in ("missing", "plain_file", "empty"):
            problems |= {str(run)}
        elif damage == "metrics_junk" and (run / "metrics.jsonl").read_bytes().startswith(b"\xff"):
            problems |= {str(run)}
    elif loads:
        problems |= run_problems
    check_cli(argv, capsys, cli_cwd, problems)


@cli_settings(40)
@given(data=st.data(), clean=st.sampled_from([True, False, False]),
       config=st.sampled_from([False, False, False, True]), overwrite=st.sampled_from([False, False, False, True]),
       change=st.sampled_from([None, None, ("--steps", "8"), ("--lr", "0.1"), ("--device", "cpu"),
                               ("--eval-batch-size", "4"), ("--eval-batch-size", "0")]))
def test_cli_resume(capsys, cli_cwd, cli_files, tmp_path_factory, data, clean, config, overwrite, change):
    """mru train --resume on the tiny run (finished: nothing to do) and on missing, empty or damaged copies,
    together with --config or --overwrite (contradictions), or changing a field a resumed run must keep."""
    folder = tmp_path_factory.mktemp("cli_resume")
    run, damage, problems = _damaged_run(data, cli_files, folder, clean)
    if clean:
        config = overwrite = False
        change = change if change in (None, ("--device", "cpu"), ("--eval-batch-size", "4")) else None
    elif data.draw(st.integers(0, 9)) == 0:
        run, problems = "", {"--resume"}
    argv = ["train", "--resume", run, "--quiet"]
    if config:
        (folder / "c.toml").write_text("lr = 0.1\n")
        argv += ["--config", folder / "c.toml"]
    if overwrite:
        argv.append("--overwrite")
    if change:
        argv += list(change)
    if config or overwrite or change in (("--steps", "8"), ("--lr", "0.1"), ("--eval-batch-size", "0")):
        names = ({"--config"} if config else set()) | ({"--overwrite"} if overwrite else set()) | \
            ({change[0], change[0][2:].replace("-", "_")} if change else set())
        problems = (problems or set()) | names
    check_cli(argv, capsys, cli_cwd, problems)


# -- pinned regressions -------------------------------------------------------------------------------------------

#: calls that once broke the contract (a traceback, a silent fallback, or a message on several lines), with the
#: names the error must mention. {run}: the tiny run; {tmp}: a fresh folder; {file}: a plain file.
_NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="valid where CUDA is available")
CLI_PINNED = [
    pytest.param([], {"command"}, id="no command: exit 2 with nothing on stderr"),
    pytest.param(["eval", "{run}", "--length", "1e400"], {"--length"}, id="eval --length 1e400: OverflowError"),
    pytest.param(["eval", "{run}", "--length", "2.5"], {"--length"}, id="eval --length 2.5: ran at length 2"),
    pytest.param(["eval", "{run}", "--factor", "1e400"], {"--factor"}, id="eval --factor 1e400: OverflowError"),
    pytest.param(["train", "--resume", ""], {"--resume"}, id="--resume '': trained a default run in ./runs"),
    pytest.param(["train", "--config", "", *_tiny(), "--out-dir", "{tmp}/r"], {"--config"},
                 id="--config '': ignored"),
    pytest.param(["train", "--config", "{tmp}/bin.toml", *_tiny(), "--out-dir", "{tmp}/r"], {"{tmp}/bin.toml"},
                 id="--config binary: message without the file name"),
    pytest.param(["train", "--config", "{tmp}", *_tiny(), "--out-dir", "{tmp}/r"], {"{tmp}"},
                 id="--config a folder: said 'does not exist'"),
    pytest.param(["train", "--config", "{tmp}/out_dir.toml", *_tiny()], {"out_dir"},
                 id="config out_dir = 5: TypeError"),
    pytest.param(["train", *_tiny(), "--out-dir", ""], {"--out-dir", "out_dir"},
                 id="--out-dir '': trained into the working folder"),
    pytest.param(["train", *_tiny(), "--out-dir", "{file}"], {"--out-dir"},
                 id="--out-dir a file: said 'already holds a run'"),
    pytest.param(["train", *_tiny(), "--out-dir", "{file}/sub"], {"--out-dir"},
                 id="--out-dir under a file: NotADirectoryError"),
    pytest.param(["train", *_tiny(), "--device", "cuda", "--out-dir", "{tmp}/r"], {"cuda", "--device"},
                 id="train --device cuda without a GPU: ValueError", marks=_NO_GPU),
    pytest.param(["compare", *_tiny(), "--models", "bmru", "--eval-lengths", "1e400", "--out-dir", "{tmp}/c"],
                 {"--eval-lengths"}, id="compare --eval-lengths 1e400: OverflowError"),
    pytest.param(["compare", *_tiny(), "--models", "bmru", "--no-plots", "--out-dir", "{file}"], {"--out-dir"},
                 id="compare --out-dir a file: FileExistsError"),
    pytest.param(["plot", "raster", "{run}", "--index", "-1", "--out", "{tmp}/p.png"], {"--index"},
                 id="plot raster --index -1: ValueError"),
    pytest.param(["plot", "raster", "{run}", "--length", "1", "--out", "{tmp}/p.png"], {"--length"},
                 id="plot raster --length 1: ValueError"),
    pytest.param(["plot", "raster", "{run}", "--length", "0", "--out", "{tmp}/p.png"], {"--length"},
                 id="plot raster --length 0: the default length instead"),
    pytest.param(["plot", "hysteresis", "--beta", "nan", "--out", "{tmp}/p.png"], {"--beta"},
                 id="plot hysteresis --beta nan: ValueError from the scan"),
    pytest.param(["plot", "hysteresis", "--beta", "", "--out", "{tmp}/p.png"], {"--beta"},
                 id="plot hysteresis --beta '': RuntimeError from torch"),
    pytest.param(["plot", "hysteresis", "{run}", "--units", "", "--out", "{tmp}/p.png"], {"--units"},
                 id="plot hysteresis --units '': RuntimeError from torch"),
    pytest.param(["plot", "bifurcation", "--gain", "inf", "--iterations", "1", "--out", "{tmp}/p.png"], {"--gain"},
                 id="plot bifurcation --gain inf: math domain error"),
    pytest.param(["plot", "bifurcation", "--iterations", "1", "--out", ""], {"--out"},
                 id="plot --out '': ValueError"),
    pytest.param(["plot", "bifurcation", "--iterations", "1", "--out", "{file}/p.png"], {"--out"},
                 id="plot --out under a file: FileExistsError"),
    pytest.param(["plot", "curves", "{tmp}/metrics_binary"], {"{tmp}/metrics_binary"},
                 id="plot curves of a binary metrics file: UnicodeDecodeError"),
    pytest.param(["stream", "{run}", "--input", "{tmp}/steps.txt", "--state-out", "{tmp}"], {"--state-out"},
                 id="stream --state-out a folder: ValueError"),
    pytest.param(["stream", "{run}", "--input", "{tmp}/steps.txt", "--state-out", "{file}/s"], {"--state-out"},
                 id="stream --state-out under a file: FileExistsError"),
    pytest.param(["eval", "{tmp}/no_config"], {"{tmp}/no_config"}, id="checkpoint without config: KeyError"),
    pytest.param(["eval", "{tmp}/tensors_int"], {"{tmp}/tensors_int"}, id="checkpoint tensors = 5: TypeError"),
    pytest.param(["eval", "{tmp}/schedule_str"], {"{tmp}/schedule_str"},
                 id="checkpoint schedule = 'x': AttributeError"),
    pytest.param(["eval", "{tmp}/d_model_9"], {"{tmp}/d_model_9"},
                 id="checkpoint config not fitting the weights: a message of 30 lines"),
    pytest.param(["train", "--resume", "{tmp}/d_model_9"], {"{tmp}/d_model_9"},
                 id="resume, config not fitting the weights: RuntimeError"),
    pytest.param(["train", "--resume", "{tmp}/schedule_str"], {"{tmp}/schedule_str"},
                 id="resume, schedule = 'x': AttributeError"),
]


@pytest.mark.parametrize("argv, names", CLI_PINNED)
def test_cli_pinned_regressions(capsys, cli_cwd, cli_files, tmp_path, argv, names):
    """Pinned cases: each once ended in a traceback, a wrong exit code or message, or a silent fallback; each
    must now be a one-line usage error (exit 2) naming the problem."""
    import shutil

    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "out_dir.toml").write_text("out_dir = 5\n")
    (tmp_path / "steps.txt").write_text("1 0 1\n")
    (tmp_path / "metrics_binary").mkdir()
    (tmp_path / "metrics_binary" / "metrics.jsonl").write_bytes(b"\xff\xfe\x00")
    for name, edit in (("no_config", lambda s: s.pop("config")), ("tensors_int", lambda s: s.update(tensors=5)),
                       ("schedule_str", lambda s: s.update(schedule="x")),
                       ("d_model_9", lambda s: s["config"].update(d_model=9))):
        shutil.copytree(cli_files["run"], tmp_path / name)
        for j in ("best.json", "last.json"):
            state = json.loads((tmp_path / name / j).read_text())
            edit(state)
            (tmp_path / name / j).write_text(json.dumps(state))
    fill = {"{run}": str(cli_files["run"]), "{tmp}": str(tmp_path), "{file}": str(cli_files["plain"])}

    def sub(text):
        for k, v in fill.items():
            text = text.replace(k, v)
        return text

    code = check_cli([sub(str(a)) for a in argv], capsys, cli_cwd, {sub(n) for n in names})
    assert code == 2


@pytest.mark.parametrize("name", sorted(TASKS))
def test_cli_tasks_describes_every_task(capsys, cli_cwd, name):
    """Pinned: 'mru tasks NAME' of a task whose split sizes come from its data (digits, MNIST, charlm) once
    ended in AttributeError ('property' object has no attribute 'items')."""
    assert check_cli(["tasks", name], capsys, cli_cwd, set()) == 0


@pytest.mark.parametrize("junk", [b"5\n[1]\n", b"null\n", b"\xff\xfe\x00"], ids=["not-objects", "null", "binary"])
def test_cli_resume_with_junk_metrics(capsys, cli_cwd, cli_files, tmp_path, junk):
    """Pinned: --resume of a run whose metrics.jsonl holds junk once raised AttributeError/UnicodeDecodeError
    inside the trainer; now the junk rows are dropped (exit 0) or the file is named (exit 2)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cli_files["run"], run)
    (run / "metrics.jsonl").write_bytes(junk)
    check_cli(["train", "--resume", run, "--quiet"], capsys, cli_cwd, None)

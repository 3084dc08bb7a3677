"""Bad input gets a clear error: what was wrong, what was expected (STYLE.md). Each test asserts on the
message. Device mismatches use the 'meta' device, which every PyTorch build has, so they run without a GPU."""

from __future__ import annotations

import math

import pytest
import torch
from scan_backends import scan_backends

from mru.nets import ModelConfig, SequenceModel
from mru.registry import UNITS, make_unit, model_units, unit_class
from mru.scan import available_backends, bmru_scan, linear_scan
from mru.units import BMRU, LRU

META = torch.device("meta")


def _ok(B=2, T=5, D=3, dtype=torch.float32):
    return torch.rand(B, T, D, dtype=dtype), torch.randn(B, T, D, dtype=dtype)


# -- scans ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scan", ["linear", "bmru"])
class TestScanInputs:
    def call(self, scan, x, y, h0=None, **kw):
        return linear_scan(x, y, h0, **kw) if scan == "linear" else bmru_scan(x, y, h0, **kw)

    def names(self, scan):
        return ("a", "b", "h0") if scan == "linear" else ("c", "beta", "s0")

    def test_wrong_rank(self, scan):
        a, b = _ok()
        first, second, _ = self.names(scan)
        with pytest.raises(ValueError, match=rf"{first} must have shape \(batch, time, units\), got \(2, 5\) \(2 dims\)"):
            self.call(scan, a[:, :, 0], b[:, :, 0])
        with pytest.raises(ValueError, match=rf"{second} must have shape \(batch, time, units\), got \(2, 5, 3, 1\)"):
            self.call(scan, a, b.unsqueeze(-1))

    def test_mismatched_shapes(self, scan):
        a, b = _ok()
        first, second, _ = self.names(scan)
        with pytest.raises(ValueError, match=rf"{second} must have the same shape as {first} \(2, 5, 3\), got \(2, 4, 3\)"):
            self.call(scan, a, b[:, :4])

    def test_empty_time_axis(self, scan):
        a, b = _ok(T=0)
        with pytest.raises(ValueError, match=r"empty time axis .*T >= 1"):
            self.call(scan, a, b)

    def test_not_a_tensor(self, scan):
        a, b = _ok()
        first, _, _ = self.names(scan)
        with pytest.raises(TypeError, match=rf"{first} must be a torch.Tensor .* got list"):
            self.call(scan, a.tolist(), b)

    def test_initial_state_shape(self, scan):
        a, b = _ok()
        _, _, init = self.names(scan)
        with pytest.raises(ValueError, match=rf"{init} must have shape \(batch, units\) = \(2, 3\), got \(3, 2\)"):
            self.call(scan, a, b, torch.zeros(3, 2))
        with pytest.raises(ValueError, match=rf"{init} must have shape \(batch, units\) = \(2, 3\), got \(2, 5, 3\)"):
            self.call(scan, a, b, torch.zeros(2, 5, 3))
        with pytest.raises(TypeError, match=rf"{init} must be a torch.Tensor"):
            self.call(scan, a, b, [[0.0] * 3] * 2)

    def test_integer_dtype(self, scan):
        a, b = _ok()
        with pytest.raises(TypeError, match="floating-point"):
            self.call(scan, a.long(), b.long())

    def test_device_mismatch(self, scan):
        a, b = _ok()
        first, second, init = self.names(scan)
        with pytest.raises(ValueError, match=rf"{second} is on meta but {first} is on cpu"):
            self.call(scan, a, b.to(META))
        with pytest.raises(ValueError, match=rf"{init} is on meta but the inputs are on cpu"):
            self.call(scan, a, b, torch.zeros(2, 3, device=META))

    def test_unknown_backend_suggests_the_closest(self, scan):
        a, b = _ok()
        with pytest.raises(ValueError, match=r"unknown scan backend 'torhc'.* Did you mean 'torch'\?"):
            self.call(scan, a, b, backend="torhc")
        with pytest.raises(ValueError, match=r"unknown scan backend 'refrence'.* Did you mean 'reference'\?"):
            self.call(scan, a, b, backend="refrence")

    def test_backend_that_cannot_run_here(self, scan):
        if available_backends().get("triton") == "available":
            pytest.skip("triton runs on CPU here (TRITON_INTERPRET): no unavailable backend to ask for")
        a, b = _ok()
        with pytest.raises(RuntimeError, match=r"scan backend 'triton' (is not available|does not run on cpu)"):
            self.call(scan, a, b, backend="triton")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["c", "beta"])
def test_bmru_scan_rejects_nan_and_inf(where, bad):
    c, beta = torch.randn(2, 7, 3), torch.randn(2, 7, 3)
    (c if where == "c" else beta)[1, 4, 2] = bad
    for backend in scan_backends():     # some backends fuse the check into the scan: each must name the tensor
        with pytest.raises(ValueError, match=rf"^{where} contains NaN or Inf; a BMRU cannot decide a write"):
            bmru_scan(c, beta, backend=backend)
        with pytest.raises(ValueError, match=rf"^{where} contains NaN or Inf"):
            bmru_scan(c.double(), beta.double(), backend=backend)


def test_bmru_scan_nan_check_can_be_turned_off():
    """check_finite=False skips the check (for speed): a NaN candidate then compares as 'no write'."""
    c, beta = torch.ones(1, 3, 1), torch.full((1, 3, 1), 0.5)
    c[0, 1] = float("nan")
    s = bmru_scan(c, beta, -torch.ones(1, 1), check_finite=False, backend="torch")
    assert s.flatten().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan")])
def test_bmru_scan_eps_out_of_range(eps):
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\] \(0 = BMRU, 1 = CMRU\)"):
        bmru_scan(*_ok(), eps=eps)


@pytest.mark.parametrize("gamma", [0.0, -1.0, float("inf"), float("nan")])
def test_bmru_scan_gamma_not_positive(gamma):
    with pytest.raises(ValueError, match=r"gamma \(surrogate slope\) must be a finite number > 0"):
        bmru_scan(*_ok(), gamma=gamma)


def test_bmru_scan_rejects_complex():
    with pytest.raises(TypeError, match=r"bmru_scan needs real floating-point tensors, got c: torch.complex64"):
        bmru_scan(torch.randn(2, 5, 3, dtype=torch.complex64), torch.randn(2, 5, 3, dtype=torch.complex64))


def test_linear_scan_rejects_bool():
    with pytest.raises(TypeError, match="linear_scan needs floating-point or complex tensors"):
        linear_scan(torch.ones(2, 5, 3, dtype=torch.bool), torch.ones(2, 5, 3, dtype=torch.bool))


# -- units ------------------------------------------------------------------------------------------------

UNIT_NAMES = list(UNITS)


@pytest.mark.parametrize("name", UNIT_NAMES)
class TestUnitInputs:
    def unit(self, name, **kw):
        torch.manual_seed(0)
        return make_unit(name, 3, 4, **kw)

    def test_wrong_rank_and_size(self, name):
        unit = self.unit(name)
        cls = type(unit).__name__
        with pytest.raises(ValueError, match=rf"{cls}: expected input of shape \(batch, time, 3\) or unbatched "
                                             rf"\(time, 3\), got \(2, 5, 4\)"):
            unit(torch.randn(2, 5, 4))
        with pytest.raises(ValueError, match=r"expected input of shape .* got \(1, 2, 5, 3\)"):
            unit(torch.randn(1, 2, 5, 3))
        with pytest.raises(ValueError, match=r"expected input of shape \(time, batch, 3\)"):
            self.unit(name, batch_first=False)(torch.randn(5))
        with pytest.raises(ValueError, match=rf"{cls}: expected input of shape \(batch, 3\) or unbatched \(3,\), "
                                             rf"got \(2, 5, 3\)"):
            unit.step(torch.randn(2, 5, 3))

    def test_wrong_dtype(self, name):
        unit = self.unit(name)
        with pytest.raises(TypeError, match=r"input dtype torch.float64 does not match the parameters' torch.float32; "
                                            r"cast the input or the module"):
            unit(torch.randn(2, 5, 3, dtype=torch.float64))
        with pytest.raises(TypeError, match=r"input must be floating point, got torch.int64"):
            unit(torch.ones(2, 5, 3, dtype=torch.long))
        with pytest.raises(TypeError, match=r"input must be a torch.Tensor, got list"):
            unit([[0.0, 0.0, 0.0]])
        with pytest.raises(TypeError, match=r"does not match the parameters"):
            unit.step(torch.randn(2, 3, dtype=torch.float64))

    def test_empty_time_axis(self, name):
        unit = self.unit(name)
        with pytest.raises(ValueError, match="input has an empty time axis"):
            unit(torch.randn(2, 0, 3))
        with pytest.raises(ValueError, match="input has an empty time axis"):
            unit(torch.randn(0, 3))
        with pytest.raises(ValueError, match="input has an empty time axis"):
            self.unit(name, batch_first=False)(torch.randn(0, 2, 3))

    def test_wrong_state_shape(self, name):
        unit = self.unit(name, num_layers=2)
        S = unit.state_size
        with pytest.raises(ValueError, match=rf"expected state of shape \(num_layers, batch, state_size\) = "
                                             rf"\(2, 2, {S}\), got \(1, 2, {S}\)"):
            unit(torch.randn(2, 5, 3), torch.zeros(1, 2, S))
        with pytest.raises(ValueError, match=rf"= \(2, {S}\), got \(2, 2, {S}\)"):
            unit(torch.randn(5, 3), torch.zeros(2, 2, S))                   # unbatched input, batched state
        with pytest.raises(ValueError, match=rf"= \(2, 3, {S}\), got \(2, 2, {S}\)"):
            unit.step(torch.randn(3, 3), torch.zeros(2, 2, S))
        with pytest.raises(TypeError, match=r"state must be a torch.Tensor"):
            unit(torch.randn(2, 5, 3), 0.0)

    def test_device_mismatch(self, name):
        unit = self.unit(name)
        with pytest.raises(ValueError, match=r"input is on meta but the parameters are on cpu"):
            unit(torch.randn(2, 5, 3, device=META))
        with pytest.raises(ValueError, match=r"state is on meta but the parameters are on cpu"):
            unit(torch.randn(2, 5, 3), torch.zeros(1, 2, unit.state_size, device=META))
        with pytest.raises(ValueError, match=r"state is on meta but the parameters are on cpu"):
            unit.step(torch.randn(2, 3), torch.zeros(1, 2, unit.state_size, device=META))

    @pytest.mark.parametrize("kwargs, message", [
        ({"hidden_size": 0}, r"hidden_size must be a positive integer, got 0"),
        ({"num_layers": 1.5}, r"num_layers must be a positive integer, got 1.5"),
        ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\), got 1.0"),
        ({"input_size": True}, r"input_size must be a positive integer, got True"),
    ])
    def test_bad_constructor_arguments(self, name, kwargs, message):
        args = {"input_size": 3, "hidden_size": 4, **kwargs}
        with pytest.raises(ValueError, match=message):
            make_unit(name, **args)


@pytest.mark.parametrize("name", ["bmru", "cmru"])
def test_nan_reaching_a_memory_unit(name):
    unit = make_unit(name, 3, 4)
    x = torch.randn(2, 5, 3)
    x[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"c contains NaN or Inf; a BMRU cannot decide a write from it"):
        unit(x)


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": 1.5}, r"eps must lie in \[0, 1\]"),
    ({"eps": -1}, r"eps must lie in \[0, 1\]"),
    ({"gamma": 0.0}, r"gamma \(surrogate slope\) must be a finite number > 0"),
    ({"gamma": math.inf}, r"gamma \(surrogate slope\) must be a finite number > 0"),
])
def test_bad_bmru_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BMRU(3, 4, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"r_min": 0.9, "r_max": 0.5}, r"need 0 <= r_min <= r_max <= 1 for the eigenvalue ring, got r_min=0.9, r_max=0.5"),
    ({"r_max": 1.5}, r"need 0 <= r_min <= r_max <= 1"),
    ({"max_phase": 0.0}, r"max_phase must be > 0, got 0.0"),
    ({"state_size": 0}, r"state_size must be a positive integer or None, got 0"),
])
def test_bad_lru_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRU(3, 4, **kwargs)


def test_unknown_scan_backend_in_a_unit():
    unit = make_unit("bmru", 3, 4, backend="nmuba")
    with pytest.raises(ValueError, match=r"unknown scan backend 'nmuba'.* Did you mean 'numba'\?"):
        unit(torch.randn(2, 5, 3))


# -- registry -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("typo, suggestion", [("bmur", "bmru"), ("lur", "lru"), ("mingur", "mingru"),
                                              ("lstn", "lstm"), ("cmr", "cmru"), ("nbcr", "nbrc")])
def test_unit_typo_suggests_the_closest_name(typo, suggestion):
    with pytest.raises(ValueError, match=rf"unknown unit '{typo}'\. Did you mean '{suggestion}'\? Known units: "):
        make_unit(typo, 3, 4)
    with pytest.raises(ValueError, match=rf"Did you mean '{suggestion}'\?"):
        unit_class(typo)


def test_registry_names_are_case_insensitive_and_listed_on_error():
    assert unit_class("BMRU") is BMRU
    with pytest.raises(ValueError, match=r"Known units: bmru, brc, cmru, gru, lru, lstm, mingru, nbrc"):
        make_unit("transformer", 3, 4)


def test_model_typo_suggests_the_closest_name():
    assert model_units("bmru+lru") == ("bmru", "lru")
    assert model_units("lru+mingru") == ("lru", "mingru")
    with pytest.raises(ValueError, match=r"unknown unit 'lur'\. Did you mean 'lru'\?"):
        model_units("bmru+lur")
    with pytest.raises(ValueError, match=r"unknown unit 'lr'\. Did you mean 'lru'\?"):
        model_units("bmru+lr")
    with pytest.raises(ValueError, match=r"unknown unit ''\. Known units: "):       # the empty part after '+'
        model_units("bmru+lru+")
    with pytest.raises(ValueError, match=r"unknown model 'bmr'\. Did you mean 'bmru'\?"):
        model_units("bmr")


# -- networks -----------------------------------------------------------------------------------------------

def _model(**kw):
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(**{"input_size": 3, "output_size": 2, "d_model": 8, "n_layers": 1, **kw}))


@pytest.mark.parametrize("kwargs, message", [
    ({"units": ("bmruu",)}, r"unknown model 'bmruu'\. Did you mean 'bmru'\?"),
    ({"units": "bmru+lur"}, r"unknown unit 'lur'\. Did you mean 'lru'\?"),
    ({"head": "lats"}, r"unknown head 'lats'\. Did you mean 'last'\?"),
    ({"combine": "concta"}, r"unknown combine mode 'concta'\. Did you mean 'concat'\?"),
    ({"norm": "rsm"}, r"unknown norm 'rsm'\. Did you mean 'rms'\?"),
    ({"d_model": 0}, r"ModelConfig.d_model must be a positive integer, got 0"),
    ({"n_layers": 2.0}, r"ModelConfig.n_layers must be a positive integer, got 2.0"),
    ({"dropout": 1.0}, r"ModelConfig.dropout must be in \[0, 1\)"),
    ({"mlp_ratio": -1.0}, r"ModelConfig.mlp_ratio must be >= 0"),
    ({"vocab_size": 0}, r"ModelConfig.vocab_size must be a positive integer or None, got 0"),
    ({"unit_kwargs": {"lru": {"r_min": 0.9}}}, r"unit_kwargs names units not in the model: \['lru'\]"),
    ({"units": ()}, r"a mixer needs at least one unit"),
])
def test_bad_model_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _model(**kwargs)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown model config keys \['d_modle'\]"):
        ModelConfig.from_dict({"input_size": 3, "output_size": 2, "d_modle": 8})


def test_bad_network_inputs():
    model = _model(units=("bmru", "lru"))
    with pytest.raises(ValueError, match=r"SequenceModel: expected input of shape \(batch, time, 3\), got \(2, 5, 4\)"):
        model(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, time, 3\), got \(5, 3\)"):
        model(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"SequenceModel: expected input of shape \(batch, 3\), got \(2, 5, 3\)"):
        model.step(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"SequenceModel: input has an empty time axis"):
        model(torch.randn(2, 0, 3))
    with pytest.raises(TypeError, match=r"SequenceModel: expected a tensor of shape \(batch, time, 3\), got list"):
        model([[[0.0] * 3]])
    with pytest.raises(TypeError, match=r"expected floating-point input of the parameters' dtype torch.float32, "
                                        r"got torch.float64; cast the input or the model"):
        model(torch.randn(2, 5, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"expected floating-point input .* got torch.int64"):
        model(torch.ones(2, 5, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"expected floating-point input .* got torch.float64"):
        model.step(torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"SequenceModel: input is on meta but the parameters are on cpu"):
        model(torch.randn(2, 5, 3, device=META))
    x = torch.randn(2, 5, 3)
    x[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"contains NaN or Inf"):
        model(x)


def test_bad_token_inputs():
    model = _model(vocab_size=5)
    with pytest.raises(TypeError, match=r"SequenceModel: token inputs must be integer tensors, got torch.float32"):
        model(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"SequenceModel: expected input of shape \(batch, time\), got \(2, 5, 3\)"):
        model(torch.zeros(2, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"SequenceModel: expected input of shape \(batch,\), got \(2, 5\)"):
        model.step(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, vocab_size=5\), got values in \[0, 7\]"):
        model(torch.tensor([[0, 7, 1]]))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, vocab_size=5\), got values in \[-1, 2\]"):
        model.step(torch.tensor([-1, 2]))

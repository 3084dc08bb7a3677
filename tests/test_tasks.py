"""Tests of mru.tasks (DESIGN §7): the TaskData/Task contract for every registered task, an independent
checker per task that recomputes the targets from the inputs, loss/metric sanity, options and lengths,
and the real-data loaders (IDX files and text files written here)."""

from __future__ import annotations

import gzip
import math
import struct
import time
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mru.tasks import TASKS, DataNotFoundError, Task, TaskData, get_task, list_tasks, read_idx
from mru.tasks.base import block_size

GENERATED = ["copy_first", "denoising", "adding", "selective_copy", "latch", "mode_filter"]
REAL = ["digits", "digits_permuted", "smnist", "psmnist", "charlm"]
ALL = GENERATED + REAL

# ----------------------------------------------------------------------------------------------------------
# real-data fixtures: small IDX files and a small text, written here
# ----------------------------------------------------------------------------------------------------------

_IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
              np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray, code: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """An IDX file's bytes, written independently of mru's reader; ``code``/``dims`` may lie."""
    array = np.asarray(array)
    code = _IDX_CODES[array.dtype.newbyteorder("=")] if code is None else code
    dims = array.shape if dims is None else dims
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, gz: bool = False, **kw):
    data = idx_bytes(array, **kw)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


MNIST_TRAIN, MNIST_TEST, MNIST_VAL = 12, 6, 4


def write_mnist(folder, gz=False, n_train=MNIST_TRAIN, n_test=MNIST_TEST, side=28):
    rng = np.random.default_rng(123)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), array, gz=gz)
    return arrays


def make_text(n_chars: int = 3000) -> str:
    rng = np.random.default_rng(7)
    words = ["latch", "mémoire", "état", "bit", "écrit", "lu", "中文", "ok", "x", "attractor"]
    parts = []
    while sum(map(len, parts)) < n_chars:
        parts.append(words[rng.integers(len(words))] + ("\n" if rng.random() < 0.1 else " "))
    return "".join(parts)


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks_data")
    mnist = write_mnist(root / "mnist_plain")
    text = make_text()
    text_path = root / "corpus.txt"
    text_path.write_text(text, encoding="utf-8")
    return {"mnist_dir": root / "mnist_plain", "mnist": mnist, "text_path": text_path, "text": text}


@pytest.fixture(scope="module")
def make(data_files):
    """Build a task by name, pointing real-data tasks at the small files above."""

    def build(name, **kw):
        if name in ("smnist", "psmnist"):
            kw.setdefault("data_dir", data_files["mnist_dir"])
            kw.setdefault("val_size", MNIST_VAL)
        if name == "charlm":
            kw.setdefault("path", data_files["text_path"])
            kw.setdefault("length", 16)
        return get_task(name, **kw)

    return build


def small(task: Task, split: str = "train", n: int = 40, **kw) -> TaskData:
    if not task.generated:
        n = min(n, task.default_sizes[split])
    return task.dataset(split, n=n, **kw)


# ----------------------------------------------------------------------------------------------------------
# independent checkers: recompute y (and mask) from x, with plain loops
# ----------------------------------------------------------------------------------------------------------


def check_copy_first(task, data):
    assert torch.equal(data.y, data.x[:, 0, :])
    assert data.mask is None


def check_denoising(task, data):
    k = task.n_marks
    for x, y, m in zip(data.x, data.y, data.mask):
        ends = (x[:, 2] == 1).nonzero().flatten().tolist()
        assert len(ends) == 1 and x[:, 2].sum() == 1
        end = ends[0]
        recall = list(range(end + 1, data.length))
        assert len(recall) == k and m.nonzero().flatten().tolist() == recall
        marks = (x[:, 1] == 1).nonzero().flatten().tolist()
        assert len(marks) == k and set(x[:, 1].tolist()) <= {0.0, 1.0}
        assert all(p < end - task.dead_tail for p in marks)
        assert x[end:, 0].abs().sum() == 0 and x[end + 1 :].abs().sum() == 0
        assert torch.equal(y[recall, 0], x[marks, 0])
        assert y[~m].abs().sum() == 0


def check_adding(task, data):
    half = data.length // 2
    for x, y in zip(data.x, data.y):
        marks = (x[:, 1] == 1).nonzero().flatten().tolist()
        assert len(marks) == 2 and x[:, 1].sum() == 2
        assert marks[0] < half <= marks[1]
        assert ((x[:, 0] >= 0) & (x[:, 0] < 1)).all()
        assert y.shape == (1,) and math.isclose(y.item(), x[marks, 0].sum().item(), rel_tol=1e-6)


def check_selective_copy(task, data):
    k = task.n_tokens
    for x, y, m in zip(data.x, data.y, data.mask):
        tokens = x.tolist()
        recall = [t for t, tok in enumerate(tokens) if tok == 1]
        assert recall == list(range(data.length - k, data.length))
        assert m.nonzero().flatten().tolist() == recall
        symbols = [tok - 2 for tok in tokens if tok >= 2]
        assert len(symbols) == k and all(0 <= s < task.n_symbols for s in symbols)
        assert y[recall].tolist() == symbols
        assert set(tokens[: data.length - k]) <= set(range(task.input_size)) - {1}


def check_latch(task, data):
    for x, y, m in zip(data.x, data.y, data.mask):
        write, read, value = x[:, 0].tolist(), x[:, 1].tolist(), x[:, 2].tolist()
        assert write[0] == 1 and read[-1] == 1
        bit = None
        for t in range(data.length):
            assert (write[t], read[t]) in {(0, 0), (1, 0), (0, 1)}
            if write[t]:
                assert value[t] in (-1.0, 1.0)
                bit = int(value[t] > 0)
            elif read[t]:
                assert value[t] == 0
            else:
                assert value[t] in (-1.0, 1.0)  # distractor carrying a bit to ignore
            assert y[t].item() == bit
            assert bool(m[t]) == (bool(read[t]) if task.scored == "reads" else True)


def check_mode_filter(task, data):
    lam = task.decay
    gain = math.sqrt(1 - lam * lam)
    for x, y in zip(data.x.double(), data.y.double()):
        assert x[0, 1].item() in (-1.0, 1.0)
        f, mode, expected = 0.0, None, []
        for t in range(data.length):
            if x[t, 1] != 0:
                mode = x[t, 1].item()
            f = lam * f + gain * x[t, 0].item()
            expected.append(mode * f)
        torch.testing.assert_close(y[:, 0], torch.tensor(expected, dtype=torch.float64), atol=1e-5, rtol=1e-5)
    assert data.mask is None


def _digit_lookup():
    from sklearn.datasets import load_digits

    d = load_digits()
    lookup: dict[bytes, set[int]] = {}
    for img, lab in zip(d.data.astype(np.uint8), d.target):
        lookup.setdefault(img.tobytes(), set()).add(int(lab))
    return lookup


def check_digits(task, data):
    pixels = data.x[:, :, 0].numpy() * 16
    assert np.allclose(pixels, np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 16
    pixels = np.round(pixels).astype(np.uint8)
    if task.permuted:
        unpermuted = np.empty_like(pixels)
        unpermuted[:, task.permutation] = pixels  # step t shows pixel permutation[t]
        pixels = unpermuted
    lookup = _digit_lookup()
    for img, lab in zip(pixels, data.y.tolist()):
        assert lab in lookup[img.tobytes()]


def check_mnist(task, data, arrays, split):
    if split == "test":
        images, labels = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    else:
        images, labels = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
        cut = MNIST_TRAIN - MNIST_VAL
        images, labels = (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
    n = len(data)
    flat = images[:n].reshape(n, 784).astype(np.float32) / 255
    if task.permuted:
        flat = flat[:, task.permutation]
    assert np.array_equal(data.x[:, :, 0].numpy(), flat)
    assert data.y.tolist() == labels[:n].tolist()


def check_charlm(task, data, text, split):
    n = len(text)
    start = {"train": 0, "val": int(0.9 * n), "test": int(0.95 * n)}[split]
    stop = {"train": int(0.9 * n), "val": int(0.95 * n), "test": n}[split]
    length = data.length
    assert torch.equal(data.y[:, :-1], data.x[:, 1:])
    for i, (x, y) in enumerate(zip(data.x, data.y)):
        window = text[start + i * length : start + i * length + length + 1]
        assert start + i * length + length + 1 <= stop  # windows never cross slices
        assert task.decode(x) == window[:-1] and task.decode(y) == window[1:]


def check(name, task, data, split, data_files):
    if name in ("digits", "digits_permuted"):
        return check_digits(task, data)
    if name in ("smnist", "psmnist"):
        return check_mnist(task, data, data_files["mnist"], split)
    if name == "charlm":
        return check_charlm(task, data, data_files["text"], split)
    return globals()[f"check_{name}"](task, data)


# ----------------------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------------------


def test_registry_lists_every_task_with_valid_metadata():
    assert list(TASKS) == ALL
    assert list_tasks() == [(name, TASKS[name].description) for name in ALL]
    for name, cls in TASKS.items():
        assert cls.name == name and issubclass(cls, Task)
        assert cls.description and "\n" not in cls.description
        assert cls.input_kind in ("float", "tokens")
        assert cls.target in ("regression", "classification")
        assert cls.readout in ("last", "per_step")
        assert cls.metric_name in ("mse", "accuracy", "bpc")
        assert cls.higher_is_better == (cls.metric_name == "accuracy")
        assert (cls.target == "regression") == (cls.metric_name == "mse")
        assert cls.default_length >= 1
        assert cls.generated == (name in GENERATED)
    for name in GENERATED:
        sizes = TASKS[name].default_sizes
        assert set(sizes) == {"train", "val", "test"} and all(1 <= v <= 5000 for v in sizes.values())


def test_unknown_task_suggests_closest_and_lists_all():
    with pytest.raises(ValueError, match="did you mean 'latch'") as e:
        get_task("lacth")
    for name in ALL:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="unknown task 'zzzz'"):
        get_task("zzzz")
    assert isinstance(get_task("Copy-First"), TASKS["copy_first"])


# ----------------------------------------------------------------------------------------------------------
# the contract, for every task
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_shapes_dtypes_and_targets_recomputed_from_inputs(name, make, data_files):
    task = make(name)
    for split in ("train", "val", "test"):
        data = small(task, split, n=30)
        n, t = len(data), data.length
        assert t == task.length and n == min(30, task.default_sizes[split])
        if task.input_kind == "float":
            assert data.x.dtype == torch.float32 and data.x.shape == (n, t, task.input_size)
        else:
            assert data.x.dtype == torch.int64 and data.x.shape == (n, t)
            assert 0 <= data.x.min() and data.x.max() < task.input_size
        out = () if task.target == "classification" else (task.output_size,)
        steps = (t,) if task.readout == "per_step" else ()
        assert data.y.shape == (n, *steps, *out)
        if task.target == "classification":
            assert data.y.dtype == torch.int64 and 0 <= data.y.min() and data.y.max() < task.output_size
        else:
            assert data.y.dtype == torch.float32
        if data.mask is not None:
            assert task.readout == "per_step" and data.mask.dtype == torch.bool and data.mask.shape == (n, t)
            assert data.mask.any(dim=1).all()  # every sequence has a scored step
        assert all(v.device.type == "cpu" for v in (data.x, data.y))
        check(name, task, data, split, data_files)


@pytest.mark.parametrize("name", ALL)
def test_determinism_per_seed(name, make):
    a = small(make(name, seed=3), "train")
    b = small(make(name, seed=3), "train")
    c = small(make(name, seed=4), "train")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert (a.mask is None and b.mask is None) or torch.equal(a.mask, b.mask)
    if name in GENERATED:
        assert not torch.equal(a.x, c.x) and not torch.equal(a.y, c.y)
    else:  # real data: fixed splits, documented as seed-independent
        assert torch.equal(a.x, c.x) and torch.equal(a.y, c.y)


@pytest.mark.parametrize("name", ALL)
def test_splits_differ(name, make):
    task = make(name)
    parts = [small(task, split, n=4) for split in ("train", "val", "test")]
    for i in range(3):
        for j in range(i + 1, 3):
            k = min(len(parts[i]), len(parts[j]))
            assert not torch.equal(parts[i].x[:k], parts[j].x[:k])


@pytest.mark.parametrize("name", GENERATED)
def test_generated_prefix_is_stable_across_n_and_blocks(name, make):
    task = make(name)
    big = task.dataset("val", n=300)  # crosses a block boundary (256)
    assert len(big) == 300
    for k in (1, 100, 257):
        part = task.dataset("val", n=k)
        assert torch.equal(part.x, big.x[:k]) and torch.equal(part.y, big.y[:k])
    assert not torch.equal(big.x[:44], big.x[256:300])  # blocks are not repeated


def test_long_sequences_are_generated_in_smaller_blocks(make):
    assert block_size(100) == 256 and block_size(20_000) == 104 and block_size(10**8) == 1
    task = make("copy_first")
    big = task.dataset("test", n=150, length=20_000)  # two blocks
    assert torch.equal(task.dataset("test", n=10, length=20_000).x, big.x[:10])
    assert not torch.equal(big.x[:10], big.x[104:114])


def perfect(task, data):
    if task.target == "regression":
        return data.y.clone()
    return F.one_hot(data.y, task.output_size).float() * 40.0


@pytest.mark.parametrize("name", ALL)
def test_loss_and_metric_sanity(name, make):
    task = make(name)
    data = small(task, "val", n=40)
    pred = perfect(task, data).requires_grad_()
    best = {"mse": 0.0, "accuracy": 1.0, "bpc": 0.0}[task.metric_name]
    assert task.metric(pred, data) == pytest.approx(best, abs=1e-6)
    loss = task.loss(pred, data)
    assert loss.dim() == 0 and loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert pred.grad is not None

    # unscored steps do not count: garbage there changes neither loss nor metric
    if data.mask is not None:
        noisy = pred.detach().clone()
        noisy[~data.mask] = torch.randn_like(noisy[~data.mask]) * 50
        assert task.metric(noisy, data) == pytest.approx(best, abs=1e-6)
        assert task.loss(noisy, data).item() == pytest.approx(0.0, abs=1e-6)

    # wrong predictions at the scored steps are scored
    if task.target == "regression":
        wrong = data.y + 1.0
        assert task.metric(wrong, data) == pytest.approx(1.0, rel=1e-5)
        assert task.loss(wrong, data).item() == pytest.approx(1.0, rel=1e-5)
    else:
        wrong = F.one_hot((data.y + 1) % task.output_size, task.output_size).float() * 40.0
        worst = {"accuracy": 0.0, "bpc": 40.0 / math.log(2.0)}[task.metric_name]
        assert task.metric(wrong, data) == pytest.approx(worst, rel=1e-4)
        uniform = torch.zeros_like(wrong)
        assert task.loss(uniform, data).item() == pytest.approx(math.log(task.output_size), rel=1e-5)

    # metric_parts combine exactly over batches
    total = count = 0
    noisy = perfect(task, data) + torch.randn_like(perfect(task, data)) * 20
    for i, batch in enumerate(data.batches(7)):
        t, c = task.metric_parts(noisy[i * 7 : (i + 1) * 7], batch)
        total, count = total + t, count + c
    assert total / count == pytest.approx(task.metric(noisy, data), rel=1e-5)

    with pytest.raises(ValueError, match="expected predictions of shape"):
        task.loss(pred.detach()[..., :1].squeeze(-1), data)


@pytest.mark.parametrize("name", GENERATED + ["digits"])
def test_baseline_metric_matches_a_trivial_predictor(name, make):
    task = make(name)
    data = task.dataset("test")
    if task.target == "regression":
        const = 1.0 if name == "adding" else 0.0  # the target's mean
        pred = torch.full(data.y.shape if task.readout == "per_step" else (len(data), 1), const)
        assert task.metric(pred, data) == pytest.approx(task.baseline_metric(), rel=0.15)
    else:
        assert task.baseline_metric() == pytest.approx(1.0 / task.output_size)
        steps = (data.length,) if task.readout == "per_step" else ()
        shape = (len(data), *steps, task.output_size)
        rng = torch.Generator().manual_seed(0)
        pred = torch.randn(shape, generator=rng)
        assert task.metric(pred, data) == pytest.approx(task.baseline_metric(), abs=0.06)


def test_mode_filter_baseline_is_the_mean_target_variance(make):
    task = make("mode_filter", decay=0.8)
    data = task.dataset("train", n=2000, length=50)
    assert (data.y**2).mean().item() == pytest.approx(task.baseline_metric(length=50), rel=0.03)
    assert task.baseline_metric(length=50) < task.baseline_metric()


def test_charlm_baseline_is_unigram_bits(make, data_files):
    task = make("charlm")
    text = data_files["text"]
    n = len(text)
    train, test = text[: int(0.9 * n)], text[int(0.95 * n) :]
    counts = Counter(train)
    total = len(train) + len(task.vocab)
    bits = -sum(math.log2((counts[ch] + 1) / total) for ch in test) / len(test)
    assert task.baseline_metric() == pytest.approx(bits, rel=1e-9)
    assert 0 < bits < math.log2(len(task.vocab)) + 1e-9


# ----------------------------------------------------------------------------------------------------------
# TaskData
# ----------------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 50), batch_size=st.integers(1, 60), shuffle=st.booleans())
def test_batches_cover_every_sequence_once(n, batch_size, shuffle):
    data = TaskData(torch.arange(n * 3, dtype=torch.float32).reshape(n, 3, 1), torch.arange(n),
                    torch.ones(n, 3, dtype=torch.bool))
    batches = list(data.batches(batch_size, shuffle, torch.Generator().manual_seed(1)))
    assert [len(b) for b in batches] == [min(batch_size, n - i) for i in range(0, n, batch_size)]
    seen = torch.cat([b.y for b in batches])
    assert sorted(seen.tolist()) == list(range(n))
    if not shuffle:
        assert seen.tolist() == list(range(n))
    for b in batches:
        assert torch.equal(b.x[:, 0, 0], b.y.float() * 3) and b.mask.shape == (len(b), 3)


def test_batches_shuffle_is_reproducible_from_the_generator():
    data = TaskData(torch.randn(100, 4, 2), torch.arange(100))
    a = [b.y for b in data.batches(16, True, torch.Generator().manual_seed(5))]
    b = [b.y for b in data.batches(16, True, torch.Generator().manual_seed(5))]
    c = [b.y for b in data.batches(16, True, torch.Generator().manual_seed(6))]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    assert all(bt.mask is None for bt in data.batches(16, True, None))
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(0, False, None))


def test_taskdata_validates_shapes_and_indexes():
    with pytest.raises(ValueError, match="one row per sequence"):
        TaskData(torch.zeros(4, 5, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        TaskData(torch.zeros(4, 5, 1), torch.zeros(4), torch.ones(4, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        TaskData(torch.zeros(4, 5, 1), torch.zeros(4), torch.ones(4, 5))
    data = TaskData(torch.arange(20.0).reshape(4, 5, 1), torch.arange(4), torch.ones(4, 5, dtype=torch.bool))
    assert len(data) == 4 and data.length == 5
    assert data[1].y.tolist() == [1] and data[-1].y.tolist() == [3] and len(data[1:3]) == 2
    assert data.to("cpu").x is data.x


# ----------------------------------------------------------------------------------------------------------
# lengths and options
# ----------------------------------------------------------------------------------------------------------


def test_latch_evaluates_at_10x_and_100x_the_training_length(make, data_files):
    task = make("latch")
    t = task.length
    long10 = task.dataset("test", n=32, length=10 * t)
    assert long10.x.shape == (32, 10 * t, 3)
    check_latch(task, long10)
    long100 = task.dataset("test", n=3, length=100 * t)
    assert long100.x.shape == (3, 100 * t, 3)
    check_latch(task, long100)
    # lengths enter the seed: the 10x set is not the training-length set stretched
    assert not torch.equal(long10.x[:, :t], task.dataset("test", n=32).x)


def test_latch_at_100x_with_hundreds_of_sequences_is_fast_and_gaps_are_long(make):
    task = make("latch")
    start = time.perf_counter()
    data = task.dataset("test", n=300, length=100 * task.length)
    assert time.perf_counter() - start < 10.0  # about 0.3 s on one core; generous for loaded machines
    assert data.x.shape == (300, 10_000, 3) and data.x.dtype == torch.float32
    # vectorised re-check with torch ops: forward-fill the written bit with cummax over write positions
    write, read, value = data.x[..., 0].bool(), data.x[..., 1].bool(), data.x[..., 2]
    steps = torch.arange(data.length).expand_as(write)
    last = torch.where(write, steps, torch.zeros_like(steps)).cummax(dim=1).values
    bit = (value.gather(1, last) > 0).long()
    assert torch.equal(data.y, bit) and torch.equal(data.mask, read)
    since = (steps - last)[read].float()
    assert since.mean() > 30  # time since the last write at a read: geometric, mean ~1/write_prob = 50
    assert (since > 100).float().mean() > 0.05
    assert write.float().mean().item() == pytest.approx(task.write_prob, rel=0.1)


def test_latch_scored_all_marks_every_step(make, data_files):
    task = make("latch", scored="all")
    data = task.dataset("train", n=8)
    assert data.mask.all()
    check_latch(task, data)


@pytest.mark.parametrize("name", GENERATED + ["charlm"])
def test_length_override_keeps_targets_consistent(name, make, data_files):
    task = make(name)
    length = 2 * task.length if name != "charlm" else 24
    data = task.dataset("val", n=5, length=length)
    assert data.length == length
    check(name, task, data, "val", data_files)


def test_options_change_the_data(make):
    assert make("denoising", n_marks=3, dead_tail=20).dataset("train", n=4).mask.sum() == 12
    check_denoising(t := make("denoising", n_marks=3, dead_tail=150), t.dataset("train", n=20))
    check_selective_copy(t := make("selective_copy", n_tokens=4, n_symbols=3, length=20), t.dataset("train", n=20))
    assert t.input_size == 5 and t.output_size == 3
    noise = make("copy_first", noise_std=0.0).dataset("train", n=3).x
    assert noise[:, 1:].abs().sum() == 0 and noise[:, 0].abs().sum() > 0
    # values given as strings (as from a command line) are converted
    task = get_task("latch", length="50", seed="2", write_prob="0.05")
    assert (task.length, task.seed, task.write_prob) == (50, 2, 0.05)
    assert task.config() == {"name": "latch", "length": 50, "seed": 2, "write_prob": 0.05, "read_prob": 0.1,
                             "scored": "reads"}
    assert get_task(**task.config()).config() == task.config()


@pytest.mark.parametrize(
    "name, kwargs, pattern",
    [
        ("latch", {"write_prb": 0.1}, "unknown option 'write_prb' \\(did you mean 'write_prob'\\?\\)"),
        ("adding", {"foo": 1}, "options of adding: none"),
        ("latch", {"write_prob": 0.0}, "write_prob must be in \\(0, 1\\]"),
        ("latch", {"write_prob": 0.6, "read_prob": 0.5}, "write_prob \\+ read_prob must be at most 1"),
        ("latch", {"read_prob": "often"}, "read_prob must be a number"),
        ("latch", {"scored": "read"}, "did you mean 'reads'"),
        ("latch", {"length": 1}, "length must be at least 2"),
        ("copy_first", {"noise_std": -1}, "noise_std must be in \\[0, inf\\]"),
        ("copy_first", {"length": 0}, "length must be at least 1"),
        ("copy_first", {"length": "long"}, "length must be an integer"),
        ("copy_first", {"length": 2.5}, "length must be an integer"),
        ("copy_first", {"seed": -1}, "seed must be at least 0"),
        ("denoising", {"n_marks": 0}, "n_marks must be at least 1"),
        ("denoising", {"n_marks": True}, "n_marks must be an integer"),
        ("denoising", {"length": 20, "dead_tail": 10}, "at least 2\\*n_marks \\+ dead_tail \\+ 1 = 21"),
        ("selective_copy", {"n_tokens": 80}, "at least 2\\*n_tokens = 160"),
        ("selective_copy", {"n_symbols": 1}, "n_symbols must be at least 2"),
        ("mode_filter", {"decay": 1.0}, "decay must be in \\[0, 1\\)"),
        ("mode_filter", {"mode_prob": float("nan")}, "mode_prob must be in"),
        ("digits", {"length": 640}, "fixed length of 64"),
        ("digits", {"permutation_seed": 1}, "options of digits: position"),
        ("digits_permuted", {"permutation_seed": -3}, "permutation_seed must be at least 0"),
    ],
)
def test_bad_options_raise_clear_errors(name, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        get_task(name, **kwargs)


def test_bad_dataset_arguments_raise_clear_errors(make):
    task = make("latch")
    with pytest.raises(ValueError, match="unknown split 'tets' \\(did you mean 'test'\\?\\)"):
        task.dataset("tets")
    with pytest.raises(ValueError, match="n must be at least 1"):
        task.dataset("train", n=0)
    with pytest.raises(ValueError, match="length must be at least 2"):
        task.dataset("train", length=1)
    digits = make("digits")
    with pytest.raises(ValueError, match="fixed length of 64; length=640 is not supported"):
        digits.dataset("test", length=640)
    assert digits.dataset("test", n=3, length=64).x.shape == (3, 64, 1)
    with pytest.raises(ValueError, match="the val split has 179 images, asked for n=5000"):
        digits.dataset("val", n=5000)
    with pytest.raises(ValueError, match="fixed length of 784"):
        make("smnist").dataset("test", length=7840)


# ----------------------------------------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------------------------------------


def test_digits_splits_partition_the_dataset_stratified(make):
    from sklearn.datasets import load_digits

    d = load_digits()
    task = make("digits")
    parts = {s: task.dataset(s) for s in ("train", "val", "test")}
    assert {s: len(p) for s, p in parts.items()} == task.default_sizes == {"train": 1259, "val": 179, "test": 359}
    everything = Counter(img.astype(np.uint8).tobytes() for img in d.data)
    seen = Counter(
        np.round(img.numpy() * 16).astype(np.uint8).tobytes() for p in parts.values() for img in p.x[:, :, 0]
    )
    assert seen == everything  # train + val + test = the whole data set, each image once
    for p in parts.values():
        freq = torch.bincount(p.y, minlength=10).float() / len(p)
        assert (freq - 0.1).abs().max() < 0.02  # stratified


def test_digits_permuted_is_a_fixed_permutation_of_digits(make):
    plain, perm = make("digits").dataset("val"), make("digits_permuted")
    p = perm.permutation
    assert sorted(p.tolist()) == list(range(64)) and not np.array_equal(p, np.arange(64))
    assert np.array_equal(p, np.random.default_rng(0).permutation(64))
    data = perm.dataset("val")
    assert torch.equal(data.x, plain.x[:, torch.from_numpy(p)]) and torch.equal(data.y, plain.y)
    assert np.array_equal(make("digits_permuted", seed=9).permutation, p)  # not tied to the task seed
    assert not np.array_equal(make("digits_permuted", permutation_seed=1).permutation, p)


@pytest.mark.parametrize("name", ["digits", "digits_permuted"])
def test_digits_position_option_adds_the_row_and_column_of_each_shown_pixel(make, name):
    plain, task = make(name), make(name, position="true")
    assert task.input_size == 3 and plain.input_size == 1 and task.options["position"] is True
    a, b = plain.dataset("val", n=5), task.dataset("val", n=5)
    assert b.x.shape == (5, 64, 3) and torch.equal(b.x[..., :1], a.x) and torch.equal(b.y, a.y)
    shown = task.permutation if task.permutation is not None else np.arange(64)
    for t in (0, 9, 63):
        row, col = divmod(int(shown[t]), 8)
        assert torch.equal(b.x[:, t, 1:], torch.tensor([[row / 7, col / 7]] * 5, dtype=torch.float32))
    for bad in ("maybe", 2, 0.5):
        with pytest.raises(ValueError, match="option position must be true or false"):
            make(name, position=bad)


# ----------------------------------------------------------------------------------------------------------
# IDX reader and MNIST
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), array, gz=gz)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.shape == (2, 3, 5)
    assert np.array_equal(got, array)
    got[0, 0, 0] = 1  # writable


def test_read_idx_rejects_bad_files(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    good = idx_bytes(array)

    def bad(name, data, pattern):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=pattern) as e:
            read_idx(path)
        assert name in str(e.value)

    bad("truncated", good[:-7], "truncated.*need 60 data bytes.*holds 53")
    bad("trailing", good + b"\0", "trailing bytes")
    bad("lying-dims", idx_bytes(array, dims=(3, 4, 6)), "truncated")
    bad("lying-type", idx_bytes(array, code=0x0C), "does not match its header")
    bad("magic", b"\x08\x03" + good[2:], "not an IDX file: magic number")
    bad("type-code", idx_bytes(array, code=0x0A), "unknown IDX type code 0x0A")
    bad("zero-dims", bytes([0, 0, 8, 0]), "0 dimensions")
    bad("short-header", good[:9], "truncated header")
    bad("empty", b"", "shorter than the 4-byte magic number")
    bad("broken.gz", gzip.compress(good)[:-12], "corrupt or truncated gzip")
    bad("truncated-inside.gz", gzip.compress(good[:-1]), "truncated")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_idx(tmp_path / "absent")


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_the_four_files_and_carves_val_from_train(tmp_path, gz):
    arrays = write_mnist(tmp_path / "MNIST" / "raw", gz=gz)  # torchvision layout, found from the root
    task = get_task("smnist", data_dir=tmp_path, val_size=MNIST_VAL)
    assert task.default_sizes == {"train": MNIST_TRAIN - MNIST_VAL, "val": MNIST_VAL, "test": MNIST_TEST}
    for split in ("train", "val", "test"):
        data = task.dataset(split)
        assert data.x.shape == (task.default_sizes[split], 784, 1)
        check_mnist(task, data, arrays, split)
    train, val = task.dataset("train"), task.dataset("val")
    all_train = torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    assert torch.equal(torch.cat([train.y, val.y]), all_train)
    assert task.config()["data_dir"] == str(tmp_path)
    assert task.dataset("train", n=2).x.shape == (2, 784, 1)
    with pytest.raises(ValueError, match="the test split has 6 images, asked for n=7"):
        task.dataset("test", n=7)


def test_psmnist_permutes_pixels_with_a_fixed_permutation(make, data_files):
    plain, perm = make("smnist"), make("psmnist")
    assert np.array_equal(perm.permutation, np.random.default_rng(0).permutation(784))
    a, b = plain.dataset("test"), perm.dataset("test")
    assert torch.equal(b.x, a.x[:, torch.from_numpy(perm.permutation)]) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, b.x)


def test_mnist_data_dir_from_environment(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("MRU_DATA_DIR", str(tmp_path))
    assert get_task("smnist", val_size=MNIST_VAL).dataset("test").x.shape == (MNIST_TEST, 784, 1)
    monkeypatch.delenv("MRU_DATA_DIR")
    with pytest.raises(DataNotFoundError, match="pass data_dir=FOLDER or set MRU_DATA_DIR") as e:
        get_task("smnist")
    assert "train-images-idx3-ubyte" in str(e.value) and "never downloads" in str(e.value)


def test_mnist_missing_or_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist or is not a folder") as e:
        get_task("smnist", data_dir=tmp_path / "nowhere")
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        assert stem in str(e.value)
    assert isinstance(e.value, FileNotFoundError)

    write_mnist(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataNotFoundError, match="lacks the MNIST IDX file\\(s\\) t10k-labels-idx1-ubyte"):
        get_task("smnist", data_dir=tmp_path / "partial")

    write_mnist(tmp_path / "small_images", side=27)
    with pytest.raises(ValueError, match="should hold uint8 images of shape \\(N, 28, 28\\)"):
        get_task("smnist", data_dir=tmp_path / "small_images").dataset("train")

    arrays = write_mnist(tmp_path / "mismatch")
    write_idx(tmp_path / "mismatch" / "t10k-labels-idx1-ubyte", arrays["t10k-labels-idx1-ubyte"][:-1])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.*should hold 6 uint8 labels"):
        get_task("smnist", data_dir=tmp_path / "mismatch").dataset("test")

    arrays = write_mnist(tmp_path / "label10")
    labels = arrays["train-labels-idx1-ubyte"].copy()
    labels[0] = 10
    write_idx(tmp_path / "label10" / "train-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match="holds label 10"):
        get_task("smnist", data_dir=tmp_path / "label10").dataset("test")

    write_mnist(tmp_path / "truncated")
    path = tmp_path / "truncated" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        get_task("smnist", data_dir=tmp_path / "truncated").dataset("val")

    write_mnist(tmp_path / "good")
    with pytest.raises(ValueError, match="val_size=12 leaves no training images"):
        get_task("smnist", data_dir=tmp_path / "good", val_size=12).dataset("train")


# ----------------------------------------------------------------------------------------------------------
# character LM
# ----------------------------------------------------------------------------------------------------------


def test_charlm_vocabulary_windows_and_codec(make, data_files):
    text = data_files["text"]
    task = make("charlm")
    assert task.vocab == sorted(set(text)) and task.input_size == task.output_size == len(set(text))
    assert "中" in task.vocab and "é" in task.vocab
    assert task.decode(task.encode("mémoire 中文")) == "mémoire 中文"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        task.encode("Z")
    sizes = task.default_sizes
    n = len(text)
    assert sizes["test"] == (n - int(0.95 * n) - 1) // 16 and sizes["train"] == (int(0.9 * n) - 1) // 16
    assert len(task.dataset("test")) == sizes["test"]
    with pytest.raises(ValueError, match=f"the val slice holds {sizes['val']} windows"):
        task.dataset("val", n=sizes["val"] + 1)


def test_charlm_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a UTF-8 text file: pass the option path"):
        get_task("charlm")
    with pytest.raises(DataNotFoundError, match="absent.txt' does not exist"):
        get_task("charlm", path=tmp_path / "absent.txt")
    with pytest.raises(ValueError, match="is not a regular file"):
        get_task("charlm", path=tmp_path)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(("abc " * 300 + "café").encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt' is not valid UTF-8: byte 0xe9 at offset 1203"):
        get_task("charlm", path=latin1)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\xef\xbb\xbf")  # only a byte-order mark
    with pytest.raises(ValueError, match="is empty"):
        get_task("charlm", path=empty)
    short = tmp_path / "short.txt"
    short.write_text("hello world, " * 20, encoding="utf-8")  # 260 characters: 13 per 5 % slice
    with pytest.raises(ValueError, match="too short for length=128: it has 260 characters"):
        get_task("charlm", path=short)
    task = get_task("charlm", path=short, length=8)
    with pytest.raises(ValueError, match="too short for length=20"):
        task.dataset("test", length=20)


def test_charlm_drops_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + ("abcd" * 100).encode())
    task = get_task("charlm", path=path, length=4)
    assert task.vocab == ["a", "b", "c", "d"]
    assert task.decode(task.dataset("train", n=1).x[0]) == "abcd"

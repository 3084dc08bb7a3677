"""Character-level language modelling on a user-given UTF-8 text file (option ``path``).

The file is decoded strictly as UTF-8 (a leading byte-order mark is dropped; newlines are kept as they
are). The vocabulary is every distinct character of the whole file, sorted by code point; token i is
``vocab[i]``. The text is cut into three contiguous slices — the first 90 % train, the next 5 % val, the
last 5 % test — and each slice into non-overlapping windows of ``length + 1`` characters starting every
``length`` characters from its beginning: input ``x`` = the first ``length`` characters of a window, target
``y`` = the next character at every step (``y[:, t] == x[:, t + 1]``). Windows never cross slices. The
windows are fixed (the seed has no effect); ``dataset(split, n)`` is the first ``n`` windows, and
``default_sizes`` the number of windows of each slice. ``length`` may be overridden (other window lengths).

Token inputs ``(N, T)`` int64, per-step classification over the vocabulary on every step (``mask`` None),
metric bits per character (cross-entropy in nats / ln 2). Baseline: the bits per character of the test
slice under the train slice's character frequencies (add-one smoothed) — a unigram model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .base import DataNotFoundError, Task, TaskData

__all__ = ["CharLMTask"]

_FRACTIONS = (0.9, 0.05, 0.05)


class CharLMTask(Task):
    name = "charlm"
    description = "character-level language model on your UTF-8 text file (option path), bits per character"
    input_kind = "tokens"
    target = "classification"
    readout = "per_step"
    metric_name = "bpc"
    higher_is_better = False
    default_length = 128
    generated = False
    option_defaults = {"path": None}

    def _configure(self) -> None:
        raw_path = self.options["path"]
        if raw_path is None or raw_path == "":
            raise ValueError(
                f"{self.name} needs a UTF-8 text file: pass the option path, e.g. "
                f"get_task('{self.name}', path='corpus.txt')"
            )
        if not isinstance(raw_path, (str, os.PathLike)):
            raise ValueError(f"{self.name}: option path must be a file path, got {raw_path!r}")
        path = Path(os.fspath(raw_path)).expanduser()
        self.path = path
        if not path.exists():
            raise DataNotFoundError(f"{self.name}: text file {str(path)!r} does not exist")
        if not path.is_file():
            raise ValueError(f"{self.name}: {str(path)!r} is not a regular file; expected a UTF-8 text file")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{self.name}: {str(path)!r} is not valid UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start} "
                f"({e.reason}); re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
            ) from None
        if text.startswith("\ufeff"):
            text = text[1:]
        if not text:
            raise ValueError(f"{self.name}: {str(path)!r} is empty; expected a UTF-8 text file")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        points, tokens = np.unique(codes, return_inverse=True)
        #: the characters, token id -> character
        self.vocab: list[str] = [chr(int(c)) for c in points]
        self._index = {ch: i for i, ch in enumerate(self.vocab)}
        self.tokens = tokens.reshape(-1).astype(np.int32)  # token ids of the whole file
        self.input_size = self.output_size = len(self.vocab)
        n = len(self.tokens)
        cut1, cut2 = int(n * _FRACTIONS[0]), int(n * (_FRACTIONS[0] + _FRACTIONS[1]))
        self._bounds = {"train": (0, cut1), "val": (cut1, cut2), "test": (cut2, n)}

    def _validate_length(self, length: int) -> None:
        short = {s: b - a for s, (a, b) in self._bounds.items() if b - a < length + 1}
        if short:
            n = len(self.tokens)
            need = math.ceil((length + 1) / min(_FRACTIONS)) + 1
            slices = ", ".join(f"{s} {m}" for s, m in short.items())
            raise ValueError(
                f"{self.name}: {str(self.path)!r} is too short for length={length}: it has {n} characters, "
                f"so the {slices} characters of the 90/5/5 % train/val/test slices cannot hold one window of "
                f"length + 1 = {length + 1}; use a text of at least ~{need} characters or a smaller length"
            )

    def _windows(self, split: str, length: int) -> int:
        start, stop = self._bounds[split]
        return (stop - start - 1) // length

    @property
    def default_sizes(self) -> dict[str, int]:  # type: ignore[override]
        return {split: self._windows(split, self.length) for split in self._bounds}

    def _load(self, split: str, n: int | None, length: int) -> TaskData:
        count = self._windows(split, length)
        if n is not None:
            if n > count:
                raise ValueError(
                    f"{self.name}: the {split} slice holds {count} windows of length {length}, asked for n={n}"
                )
            count = n
        start = self._bounds[split][0]
        x = self.tokens[start : start + count * length].reshape(count, length)
        y = self.tokens[start + 1 : start + 1 + count * length].reshape(count, length)
        return TaskData(torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64)))

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` (every character must be in the vocabulary)."""
        if not isinstance(text, str):
            raise TypeError(f"{self.name}: encode takes a str, got {type(text).__name__}")
        try:
            return torch.tensor([self._index[ch] for ch in text], dtype=torch.int64)
        except KeyError as e:
            raise ValueError(
                f"{self.name}: character {e.args[0]!r} is not in the vocabulary of {str(self.path)!r}"
            ) from None

    def decode(self, tokens) -> str:
        """The text of a sequence of token ids (integers in [0, vocabulary size))."""
        ids = tokens.tolist() if isinstance(tokens, (torch.Tensor, np.ndarray)) else list(tokens)
        bad = [t for t in ids
               if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < len(self.vocab)]
        if bad:
            raise ValueError(f"{self.name}: token ids must be integers in [0, {len(self.vocab)}), got {bad[0]!r}")
        return "".join(self.vocab[t] for t in ids)

    def baseline_metric(self, length: int | None = None) -> float:
        vocab = len(self.vocab)
        a, b = self._bounds["train"]
        counts = np.bincount(self.tokens[a:b], minlength=vocab) + 1.0
        log2p = np.log2(counts / counts.sum())
        a, b = self._bounds["test"]
        return float(-log2p[self.tokens[a:b]].mean())

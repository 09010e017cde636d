"""Training that records per-sample dynamics (supervised and adversarial), and model inference.

One loop serves both labelled paradigms: :func:`train` with ``attack=None`` is standard supervised
training; with a :class:`PGD` attack it is Madry-style adversarial training. Each epoch it records,
for every training sample in canonical dataset order, the true-label probability, correctness and
loss, plus the full softmax for the configured ``softmax_epochs`` (TDDS's trajectory). Arrays live
in memory-mapped ``.npy`` files, so memory stays bounded at any scale.

Which forward pass produces the records (``RecordSpec.source``):
- ``"train"``: the training pass on the augmented batch, before the optimizer step (the authors'
  code). Adversarial runs record the adversarial view from that pass and the clean view from an
  extra no-grad eval-mode pass on the same augmented batch, also before the step.
- ``"eval"``: after each epoch, an eval-mode pass on clean, test-transformed inputs (and PGD
  inputs for the adversarial view). Costs an extra pass over the data.
BatchNorm stays in train mode for every training step (the authors' code left it in eval mode
after epoch 1 by accident).

Speed options (recipe fields, resolved per device by :func:`execution`): ``amp`` (bf16 autocast),
``channels_last`` (memory format of the model and its inputs), both "auto" = on on CUDA and off
elsewhere; ``compile`` (``torch.compile`` of the training forward, off by default). Records stay
on the device for a whole epoch and are copied to the memmaps once per epoch on CUDA (one host
sync per array per epoch instead of one per batch); on the CPU they are written per batch, where
a copy costs nothing. With every option at its default a CPU run is bit-identical to a run
without these options. ``distributed=True`` trains data-parallel under ``torchrun``
(:mod:`scorecast.distributed`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import ImageDataset, batches, to_device
from .models import Classifier
from .recipe import SPEED_DEFAULTS, Recipe
from .validation import ScorecastError, check_choice, check_positive_int, resolve_device

EVAL_BATCH = 512  # batch size of the eval-mode pass that records dynamics with RecordSpec source "eval"


def quiet() -> bool:
    """Progress bars off only when ``SCORECAST_QUIET=1`` (``run_all.sh`` and the tests set it)."""
    return os.environ.get("SCORECAST_QUIET") == "1"


def progress(iterable: Iterable, desc: str, total: int | None = None, disable: bool = False) -> Iterator:
    """Progress bar: a widget in JupyterLab, text in a terminal (``tqdm.auto``); silent when :func:`quiet` or ``disable``.

    ``total`` defaults to ``len(iterable)``. The bar is redrawn at its final count before it closes: tqdm
    redraws at most every 0.1 s, so a loop of fast iterations would otherwise leave (and a saved notebook
    keep) a bar stopped short of its total."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with tqdm(desc=desc, total=total, disable=quiet() or disable, leave=False) as bar:
        for item in iterable:
            yield item
            bar.update()
        bar.refresh()


def optimiser(recipe: Recipe, model: torch.nn.Module, steps_per_epoch: int):
    """(optimizer, per-iteration LR scheduler or None) of ``recipe`` for ``model``."""
    if recipe.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "onecycle":
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total)
    if recipe.schedule == "cosine":
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return opt, None


@dataclass(frozen=True)
class Execution:
    """How forward passes run: on ``device``, under bf16 autocast (``amp``), with the model and its
    inputs in channels_last memory format, the training forward through ``torch.compile``."""

    device: torch.device
    amp: bool = False
    channels_last: bool = False
    compile: bool = False

    def autocast(self):
        """Context for forward passes: bf16 autocast when ``amp``, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` (in place) to the device and memory format."""
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in the memory format the model expects."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def execution(device: str | torch.device = "auto", amp: str | bool = SPEED_DEFAULTS["amp"], channels_last: str | bool = SPEED_DEFAULTS["channels_last"],
              compile: bool = SPEED_DEFAULTS["compile"]) -> Execution:
    """Resolve speed options for ``device``: "auto" means on with CUDA, off elsewhere."""
    dev = resolve_device(device)
    for name, value in (("amp", amp), ("channels_last", channels_last)):
        if not (value == "auto" or isinstance(value, bool)):
            raise ScorecastError(f"{name} must be 'auto', True or False, got {value!r}")
    gpu = dev.type == "cuda"
    return Execution(dev, gpu if amp == "auto" else amp, gpu if channels_last == "auto" else channels_last, bool(compile))


@dataclass(frozen=True)
class RecordSpec:
    """What to record: ``source`` "train" or "eval" (see module doc); ``every``: record one epoch
    in ``every`` (the last of each block), so a subset run trained ``every`` times as many epochs
    as the full run is recorded at the same optimizer-step counts, with the same number of records
    (record r holds epoch (r + 1) * every - 1); ``softmax_epochs``: the RECORDS (0-based) whose
    full softmax is kept (e.g. the last 10 for the extrapolation authors' TDDS)."""

    source: str = "train"
    softmax_epochs: tuple[int, ...] = ()
    every: int = 1

    def __post_init__(self) -> None:
        check_choice("record.source", self.source, ("train", "eval"))
        check_positive_int("record.every", self.every)

    def row(self, epoch: int) -> int | None:
        """The record row of 0-based ``epoch``, or None when that epoch is not recorded."""
        return (epoch + 1) // self.every - 1 if (epoch + 1) % self.every == 0 else None


@dataclass(frozen=True)
class PGD:
    """l_inf PGD (Madry et al.) in pixel space [0, 1]: ``eps`` radius, ``step`` size, ``steps``
    iterations, uniform random start. Inputs arrive normalised; bounds are mapped per channel."""

    eps: float = 8 / 255
    step: float = 2 / 255
    steps: int = 10
    random_start: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.eps <= 0.5:
            raise ScorecastError(f"attack eps={self.eps!r} must lie in (0, 0.5] (pixel scale; 8/255 = 0.0314 is standard)")
        if not 0 < self.step <= self.eps:
            raise ScorecastError(f"attack step={self.step!r} must lie in (0, eps={self.eps}]")
        check_positive_int("attack steps", self.steps)

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dataset: ImageDataset, generator: torch.Generator | None = None,
                shard: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Adversarial version of normalised inputs x (B, C, H, W); model mode is left unchanged.

        The attack is per sample (eval-mode model, no gradient sync needed). ``shard=(rank, world,
        global_batch)``: x is part ``rank`` of a global batch of ``global_batch`` samples cut as
        :func:`scorecast.data.batches` cuts it; the random start is drawn for the whole global batch
        (so ``generator`` advances alike on every rank) and this part's rows are kept, the draws a
        one-process run makes for these samples."""
        std = to_device(torch.tensor(dataset.std).view(1, -1, 1, 1), x.device)
        mean = to_device(torch.tensor(dataset.mean).view(1, -1, 1, 1), x.device)
        lower, upper = (0 - mean) / std, (1 - mean) / std
        eps, step = self.eps / std, self.step / std
        delta = torch.zeros_like(x)
        if self.random_start:
            uniform = torch.rand(x.shape if shard is None else (shard[2], *x.shape[1:]), generator=generator)
            if shard is not None:
                uniform = torch.tensor_split(uniform, shard[1])[shard[0]]
            delta = (to_device(uniform, x.device) * 2 - 1) * eps
        x_adv = torch.max(torch.min(x + delta, upper), lower).detach()
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + step * grad.sign()
            x_adv = torch.max(torch.min(x_adv, x + eps), x - eps)
            x_adv = torch.max(torch.min(x_adv, upper), lower).detach()
        return x_adv


class Dynamics:
    """Recorded dynamics of one training run, read back from ``directory``.

    indices: (m,) sorted dataset positions of the training samples; column j of every array is
    sample indices[j]. Per view ("clean", and "adv" for adversarial runs), E records (one per
    epoch, or one per ``RecordSpec.every`` epochs): true_prob (E, m) float32, correct (E, m) bool,
    loss (E, m) float32, softmax (S, m, C) float32 for the records in ``softmax_epochs``.
    Arrays are read-only memmaps.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta = json.loads((self.directory / "dynamics.json").read_text())
        self.epochs: int = meta["epochs"]
        self.views: list[str] = meta["views"]
        self.softmax_epochs: list[int] = meta["softmax_epochs"]
        self.indices: np.ndarray = np.load(self.directory / "indices.npy")

    def _array(self, kind: str, view: str) -> np.ndarray:
        check_choice("view", view, self.views)
        return np.load(self.directory / f"{view}_{kind}.npy", mmap_mode="r")

    def true_prob(self, view: str = "clean") -> np.ndarray:
        return self._array("true_prob", view)

    def correct(self, view: str = "clean") -> np.ndarray:
        return self._array("correct", view)

    def loss(self, view: str = "clean") -> np.ndarray:
        return self._array("loss", view)

    def softmax(self, view: str = "clean") -> np.ndarray:
        return self._array("softmax", view)


class _Recorder:
    """Per-sample records in canonical order, in memory-mapped arrays under ``directory``.

    ``flush="batch"``: each batch's records are copied to the memmaps at once (a host sync per
    array per batch on a GPU). ``flush="epoch"``: they are scattered into buffers (m,) / (m, C) on
    the logits' device and copied once per epoch by :meth:`flush`; ``merge`` (data-parallel runs)
    then combines every rank's buffers first (each sample is seen by one rank per epoch, the other
    ranks' buffers hold zeros there). ``directory=None``: keep and merge buffers, write no files
    (ranks other than 0). Both modes write bit-identical arrays for the same logits. Epoch buffers
    take m x 3 values, plus m x C floats in epochs that keep the softmax (1.28M x 1000 for
    ImageNet-64: 5.1 GB of GPU memory during those epochs).
    """

    def __init__(self, directory: Path | None, indices: np.ndarray, epochs: int, num_classes: int, views: tuple[str, ...],
                 softmax_epochs: tuple[int, ...], flush: str = "batch", merge=None):
        check_choice("record flush", flush, ("batch", "epoch"))
        self.indices = np.asarray(indices, dtype=np.int64)
        self.slot = {row: s for s, row in enumerate(softmax_epochs)}
        self.mode, self.merge, self.pending = flush, merge, {}
        self.arrays = None
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        m = len(self.indices)
        np.save(directory / "indices.npy", self.indices)

        def array(name: str, shape: tuple, dtype) -> np.memmap:
            return np.lib.format.open_memmap(directory / name, mode="w+", dtype=dtype, shape=shape)

        self.arrays = {
            view: {
                "true_prob": array(f"{view}_true_prob.npy", (epochs, m), np.float32),
                "correct": array(f"{view}_correct.npy", (epochs, m), np.bool_),
                "loss": array(f"{view}_loss.npy", (epochs, m), np.float32),
                "softmax": array(f"{view}_softmax.npy", (len(softmax_epochs), m, num_classes), np.float32),
            }
            for view in views
        }
        meta = {"epochs": epochs, "views": list(views), "softmax_epochs": list(softmax_epochs)}
        (directory / "dynamics.json").write_text(json.dumps(meta))

    def record(self, view: str, row: int, idx: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record row ``row`` of samples idx (B,) CPU dataset positions from logits (B, C) and labels (B,)."""
        with torch.no_grad():
            logits = logits.detach().float()
            probs = logits.softmax(1)
            values = {
                "true_prob": probs.gather(1, labels[:, None])[:, 0],
                "correct": logits.argmax(1) == labels,
                "loss": F.cross_entropy(logits, labels, reduction="none"),
            }
            if row in self.slot:
                values["softmax"] = probs
            cols = np.searchsorted(self.indices, idx.numpy())
            if self.mode == "batch":
                self._write(view, row, cols, values)
                return
            if (view, row) not in self.pending:
                self.pending[(view, row)] = {name: torch.zeros((len(self.indices), *v.shape[1:]), dtype=v.dtype, device=v.device) for name, v in values.items()}
            buffers, cols = self.pending[(view, row)], to_device(torch.from_numpy(cols), logits.device)
            for name, v in values.items():
                buffers[name][cols] = v

    def flush(self) -> None:
        """Copy the buffered rows (epoch mode) to the memmaps, merged across ranks first under ``merge``."""
        for (view, row), buffers in self.pending.items():
            if self.merge is not None:
                buffers = {name: self.merge(buf) for name, buf in buffers.items()}
            self._write(view, row, slice(None), buffers)
        self.pending.clear()

    def _write(self, view: str, row: int, cols, values: dict) -> None:
        if self.arrays is None:
            return
        arrays = self.arrays[view]
        for name, v in values.items():
            target = arrays[name][self.slot[row]] if name == "softmax" else arrays[name][row]
            target[cols] = v.cpu().numpy()

    def close(self) -> None:
        self.flush()
        for arrays in (self.arrays or {}).values():
            for arr in arrays.values():
                arr.flush()


def train(
    model: Classifier,
    dataset: ImageDataset,
    indices: np.ndarray,
    recipe: Recipe,
    seed: int,
    record: RecordSpec | None = None,
    record_dir: str | Path | None = None,
    attack: PGD | None = None,
    device: str = "auto",
    desc: str = "train",
    record_flush: str = "auto",
    distributed: bool = False,
) -> Dynamics | None:
    """Train ``model`` in place on ``dataset[indices]`` ((m,) dataset positions).

    ``seed`` drives batch order, augmentation, dropout and PGD random starts. With ``record``, the
    dynamics are written to ``record_dir`` and returned as :class:`Dynamics`; else returns None.
    ``record_flush``: "batch", "epoch" or "auto" (epoch on CUDA, batch elsewhere); see :class:`_Recorder`.
    ``distributed=True`` (inside an initialised ``torch.distributed`` process group, e.g. under
    ``torchrun``; see :mod:`scorecast.distributed`): every rank runs this with the same arguments,
    trains a DistributedDataParallel copy on its shard of every global batch of
    ``recipe.batch_size`` (BatchNorm synchronised over the global batch), records the samples it
    saw, and rank 0 merges the records into canonical order and returns the :class:`Dynamics`
    (other ranks return None). The model's weights end up the same on every rank. Adversarial
    training too: each rank attacks its own samples (PGD is per sample) with the random starts a
    one-process run draws for them.
    """
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    if len(indices) == 0:
        raise ScorecastError("train: no training samples (indices is empty)")
    exe = execution(device, recipe.amp, recipe.channels_last, recipe.compile)
    check_choice("record_flush", record_flush, ("auto", "batch", "epoch"))
    flush = ("epoch" if exe.device.type == "cuda" else "batch") if record_flush == "auto" else record_flush
    model = exe.place(model)
    shard, merge, net = None, None, model
    if distributed:
        from . import distributed as dist_tools

        shard, merge, net, flush = dist_tools.rank_and_world(), dist_tools.merge_to_rank0, dist_tools.wrap(model, exe.device), "epoch"
    runner = torch.compile(net) if exe.compile else net
    # PGD and the clean record are eval-mode passes, sample by sample: no gradient sync, so never through DDP
    attacker = runner if shard is None else (torch.compile(model) if exe.compile else model)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(indices) // recipe.batch_size)
    optimizer, scheduler = optimiser(recipe, model, steps_per_epoch)
    recorder = None
    if record is not None:
        if record_dir is None:
            raise ScorecastError("train: record given but record_dir is None")
        if recipe.epochs % record.every:
            raise ScorecastError(f"record.every={record.every} must divide the run's {recipe.epochs} epochs")
        rows = recipe.epochs // record.every
        bad = [e for e in record.softmax_epochs if not 0 <= e < rows]
        if bad:
            raise ScorecastError(f"record.softmax_epochs {bad} lie outside the run's records 0..{rows - 1}")
        views = ("clean", "adv") if attack else ("clean",)
        folder = Path(record_dir) if shard is None or shard[0] == 0 else None
        recorder = _Recorder(folder, indices, rows, model.head.out_features, views, record.softmax_epochs, flush, merge)

    for epoch in progress(range(recipe.epochs), desc, disable=shard is not None and shard[0] != 0):
        row = None if recorder is None else record.row(epoch)
        record_in_train = row is not None and record.source == "train"
        model.train()
        for step, (x, y, idx) in enumerate(batches(dataset, indices, recipe.batch_size, train=True, generator=generator, device=exe.device, shard=shard)):
            x = x_in = exe.inputs(x)
            global_batch = min(recipe.batch_size, len(indices) - step * recipe.batch_size)
            with exe.autocast():
                if attack is not None:  # PGD against the current weights; clean view recorded before the step
                    model.eval()
                    x_in = attack.perturb(attacker, x, y, dataset, generator, None if shard is None else (*shard, global_batch))
                    if record_in_train:
                        with torch.no_grad():
                            recorder.record("clean", row, idx, attacker(x), y)
                    model.train()
                logits = runner(x_in)
                if shard is None:
                    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
                else:  # DDP averages gradients over ranks: scale each rank's sum so the result is the global batch's mean
                    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing, reduction="sum") * (shard[1] / global_batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if record_in_train:
                recorder.record("adv" if attack else "clean", row, idx, logits, y)
        if row is not None and not record_in_train:
            mine = _shard_positions(indices, EVAL_BATCH, shard)
            clean, adv = _eval_pass(model, dataset, indices, exe, EVAL_BATCH, attack, seed + epoch, output="logits", shard=shard)
            labels = dataset.labels[mine]
            recorder.record("clean", row, torch.as_tensor(mine), clean, labels)
            if attack is not None:
                recorder.record("adv", row, torch.as_tensor(mine), adv, labels)
        if recorder is not None:
            recorder.flush()
    if recorder is None:
        return None
    recorder.close()
    return Dynamics(record_dir) if recorder.arrays is not None else None


def predict(
    model: Classifier,
    dataset: ImageDataset,
    indices: np.ndarray | None = None,
    device: str = "auto",
    batch_size: int = 512,
    attack: PGD | None = None,
    seed: int = 0,
    amp: str | bool = "auto",
    channels_last: str | bool = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eval-mode logits on test-transformed inputs, in the order of ``indices`` (default: all).

    ``amp``/``channels_last``: as the recipe fields ("auto": on with CUDA). Returns (clean logits
    (n, C) CPU float32, adversarial logits (n, C) under ``attack`` or None).
    """
    return _eval_pass(model, dataset, indices, execution(device, amp, channels_last), batch_size, attack, seed, output="logits")


def embed(model: Classifier, dataset: ImageDataset, indices: np.ndarray | None = None, device: str = "auto", batch_size: int = 512,
          amp: str | bool = "auto", channels_last: str | bool = "auto") -> np.ndarray:
    """Penultimate features (n, d) float32 of every sample (eval mode, test transform, no augmentation)."""
    return _eval_pass(model, dataset, indices, execution(device, amp, channels_last), batch_size, None, 0, output="embedding")[0].numpy()


def softmax_outputs(model: Classifier, dataset: ImageDataset, augment_seed: int | None = None, attack: PGD | None = None, device: str = "auto", batch_size: int = 512) -> np.ndarray:
    """Eval-mode softmax (n, C) float32 of every sample in canonical order: on the clean test
    transform (``augment_seed`` None) or on one train-time augmentation drawn with that seed;
    under ``attack`` the inputs are first perturbed with PGD. Speed options at "auto"."""
    clean, adv = _eval_pass(model, dataset, None, execution(device), batch_size, attack, augment_seed or 0, output="logits", augment=augment_seed is not None)
    return (clean if adv is None else adv).softmax(1).numpy()


def view_softmax(model: Classifier, dataset: ImageDataset, views: int, attack: PGD | None = None, device: str = "auto",
                 out: np.ndarray | None = None) -> np.ndarray:
    """The model's softmax on ``views`` views of every sample, (views, n, C) float32: view 0 the clean
    test-transform input, view k (1..views-1) the train-time augmentation drawn with seed k; under
    ``attack`` each view is first perturbed with PGD. The proxy extrapolators' input. Written view by
    view into ``out`` when given (e.g. a memory-mapped .npy, so only one view is ever in memory)."""
    for k in range(views):
        probs = softmax_outputs(model, dataset, augment_seed=None if k == 0 else k, attack=attack, device=device)
        if out is None:
            out = np.empty((views, *probs.shape), dtype=np.float32)
        out[k] = probs
    return out


def _shard_positions(indices: np.ndarray, batch_size: int, shard: tuple[int, int] | None) -> np.ndarray:
    """The entries of ``indices`` (m,), in order, that rank ``shard[0]`` of ``shard[1]`` is given
    when :func:`scorecast.data.batches` cuts each unshuffled batch of ``batch_size``; all of them
    without a shard."""
    if shard is None:
        return indices
    return np.concatenate([np.array_split(indices[start : start + batch_size], shard[1])[shard[0]] for start in range(0, len(indices), batch_size)])


def _eval_pass(model, dataset, indices, exe: Execution, batch_size, attack, seed, output: str, augment: bool = False,
               shard: tuple[int, int] | None = None):
    """Eval-mode pass in the order of ``indices`` under ``exe``: (clean logits or embeddings (n, D),
    adversarial logits (n, C) or None), CPU float32. Each batch's output is copied into a host array
    (pinned on CUDA, without a host sync); the pass waits for the device once, at the end.
    ``shard=(rank, world)``: this rank's part of every batch only (rows in the order of
    :func:`_shard_positions`), with the random draws of a one-process pass."""
    model = exe.place(model).eval()
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    generator = torch.Generator().manual_seed(seed)
    outputs: dict[str, torch.Tensor] = {}
    rows = len(_shard_positions(indices, batch_size, shard))

    def keep(name: str, start: int, value: torch.Tensor) -> None:
        if name not in outputs:
            outputs[name] = torch.empty((rows, value.shape[1]), dtype=torch.float32, pin_memory=exe.device.type == "cuda")
        outputs[name][start : start + len(value)].copy_(value, non_blocking=True)

    start = 0
    for step, (x, y, _) in enumerate(batches(dataset, indices, batch_size, train=augment, generator=generator, device=exe.device, shuffle=False, shard=shard)):
        x = exe.inputs(x)
        with exe.autocast():
            with torch.no_grad():
                keep("clean", start, (model.embed(x) if output == "embedding" else model(x)).float())
            if attack is not None:
                global_batch = min(batch_size, len(indices) - step * batch_size)
                x_adv = attack.perturb(model, x, y, dataset, generator, None if shard is None else (*shard, global_batch))
                with torch.no_grad():
                    keep("adv", start, model(x_adv).float())
        start += len(x)
    if exe.device.type == "cuda":
        torch.cuda.synchronize(exe.device)
    return outputs["clean"], outputs.get("adv")

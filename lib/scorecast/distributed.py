"""Data-parallel scoring and retraining with PyTorch DDP, launched by ``torchrun``.

Every rank runs the same script; :func:`setup` joins the process group that ``torchrun`` describes
in the environment (NCCL on GPUs, one GPU per rank; gloo on CPUs), then each rank calls
:func:`scorecast.train.train` with ``distributed=True`` and identical arguments::

    # score.py, run as: torchrun --nproc-per-node 4 score.py
    from scorecast import distributed
    from scorecast.data import load_dataset
    from scorecast.models import build_model
    from scorecast.train import Recipe, RecordSpec, train

    device = distributed.setup()
    ds = load_dataset("cifar10", root="/data")
    model = build_model("resnet18", ds.num_classes, seed=0)
    dyn = train(model, ds, range(len(ds)), Recipe(epochs=200, batch_size=128), seed=0,
                record=RecordSpec(), record_dir="runs/seed0", device=device, distributed=True)
    distributed.teardown()  # dyn: the merged Dynamics on rank 0, None elsewhere

What each rank does (``train``): the global batch order and augmentation draws are those of a
single-process run with the same seed; rank r takes the r-th contiguous part of each global batch
(:func:`scorecast.data.batches` with ``shard``). Its loss is scaled so that DDP's gradient average
equals the gradient of the global batch's mean loss, and BatchNorm uses the global batch's
statistics (:func:`wrap`), so the run is the single-process run up to float summation order
(dropout masks excepted: every rank draws its own; the paper's models use no dropout).
Each rank records the samples it saw into per-epoch buffers; :func:`merge_to_rank0` sums them on
rank 0 (every sample is seen by exactly one rank per epoch, so the sum is exact), which writes the
memmaps in canonical order.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from .validation import ScorecastError


def setup() -> str:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT) and return this rank's device: "cuda:<LOCAL_RANK>" (NCCL) when CUDA is
    available, else "cpu" (gloo)."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ScorecastError(f"scorecast.distributed.setup: environment variables {missing} are not set; launch the script with torchrun "
                             "(e.g. torchrun --nproc-per-node 2 script.py)")
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return "cpu"


def teardown() -> None:
    """Leave the process group (call once at the end of the script)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of ranks) of the initialised process group."""
    if not dist.is_initialized():
        raise ScorecastError("train(distributed=True) needs an initialised process group: call scorecast.distributed.setup() "
                             "in a script launched by torchrun")
    return dist.get_rank(), dist.get_world_size()


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient of every rank's copy is the sum of the copies' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch over all ranks
    (all-reduced counts, sums and squared deviations; running variance unbiased, as BatchNorm2d).
    For backends where ``nn.SyncBatchNorm`` does not run (gloo on CPUs); on GPUs :func:`wrap` uses
    ``nn.SyncBatchNorm``. A rank with an empty shard contributes nothing. x: (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        shape = (1, -1, 1, 1)
        count = torch.full((1,), x.numel() // x.shape[1], dtype=x.dtype, device=x.device)
        totals = _AllReduceSum.apply(torch.cat([x.sum((0, 2, 3)), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum((0, 2, 3))) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(var * n / (n - 1), alpha=self.momentum)
        return centred / torch.sqrt(var + self.eps).view(shape) * self.weight.view(shape) + self.bias.view(shape)


def _global_batchnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d below ``module`` (in place) by a :class:`GlobalBatchNorm2d` with its state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            if child.momentum is None or not child.affine or not child.track_running_stats:
                raise ScorecastError(f"distributed training: BatchNorm {name!r} must have momentum, affine weights and running stats")
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum).to(child.weight.device)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            _global_batchnorm(child)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """Make ``model``'s BatchNorm layers global-batch (in place: ``nn.SyncBatchNorm`` on CUDA,
    :class:`GlobalBatchNorm2d` elsewhere) and return the DistributedDataParallel module to call."""
    if device.type == "cuda":
        for name, child in list(model.named_children()):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        return nn.parallel.DistributedDataParallel(model, device_ids=[device])
    _global_batchnorm(model)
    return nn.parallel.DistributedDataParallel(model)


def merge_to_rank0(buffer: torch.Tensor) -> torch.Tensor:
    """Sum of every rank's ``buffer`` (any shape; bool summed as uint8) on rank 0; other ranks get
    their own buffer back. Exact when at most one rank holds a non-zero value per element."""
    wide = buffer.to(torch.uint8) if buffer.dtype == torch.bool else buffer.clone()
    dist.reduce(wide, dst=0)
    return wide.bool() if buffer.dtype == torch.bool else wide

"""Data-parallel scoring and retraining with PyTorch DDP, launched by ``torchrun``.

From the pipeline and the notebooks: ``experiment.processes: N`` makes every training run of
:class:`scorecast.pipeline.Pipeline` (scoring runs and retraining, standard or adversarial) a
data-parallel run of N processes on this node, which :func:`launch` starts with ``torchrun`` as
a subprocess of the notebook's kernel; the pipeline's cache is written by the calling process
only, after rank 0 has written the run's files. Everything else (embeddings, extrapolation,
evaluation) runs in the calling process.

In a script of your own, every rank runs the same script; :func:`setup` joins the process group
that ``torchrun`` describes in the environment (NCCL on GPUs, one GPU per rank; gloo on CPUs),
then each rank calls :func:`scorecast.train.train` with ``distributed=True`` and identical arguments::

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
(dropout masks excepted: every rank draws its own; the paper's models use no dropout). In
adversarial training each rank attacks its own part (PGD is per sample, in eval mode, outside
DDP) from the random starts the single-process run draws for those samples; PGD's sign step can
turn a float-order difference in a gradient component near zero into a whole step, after which
the two runs part ways as runs of different seeds do.
Each rank records the samples it saw into per-epoch buffers; :func:`merge_to_rank0` sums them on
rank 0 (every sample is seen by exactly one rank per epoch, so the sum is exact), which writes the
memmaps in canonical order.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from .validation import ScorecastError, check_positive_int, resolve_device

RESULT = "result.pkl"  # rank 0's return value, beside the job file
OUTPUT_TAIL = 4000  # characters of the ranks' output a failed launch's error quotes


def setup(device: str = "auto") -> str:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT) and return this rank's device: "cuda:<LOCAL_RANK>" (NCCL) when
    ``device`` resolves to CUDA ("auto": when CUDA is available), else "cpu" (gloo)."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ScorecastError(f"scorecast.distributed.setup: environment variables {missing} are not set; launch the script with torchrun "
                             "(e.g. torchrun --nproc-per-node 2 script.py)")
    if resolve_device(device).type == "cuda":
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


def check_processes(processes: int, device: str) -> int:
    """``processes`` as int, raising unless this node can run that many data-parallel processes on
    ``device``: one GPU each on CUDA (ranks take cuda:0..processes-1, so a device naming one GPU
    is refused), any number on the CPU."""
    processes = check_positive_int("processes", processes)
    if processes > 1 and resolve_device(device).type == "cuda":
        if device not in ("auto", "cuda"):
            raise ScorecastError(f"device={device!r} names one GPU, but {processes} data-parallel processes take cuda:0..{processes - 1}; "
                                 "use device: cuda (or auto) and CUDA_VISIBLE_DEVICES to choose the GPUs")
        if processes > torch.cuda.device_count():
            raise ScorecastError(f"processes={processes} but this node has {torch.cuda.device_count()} visible GPU(s); "
                                 "use at most that many (one GPU per process)")
    return processes


def launch(function: Callable[..., Any], kwargs: dict, processes: int, device: str) -> Any:
    """Run ``function(**kwargs, device=<the rank's device>, distributed=True)`` in ``processes``
    data-parallel processes on this node and return rank 0's result.

    ``torchrun --standalone --nproc-per-node processes -m scorecast.distributed JOB`` starts them;
    ``function`` and ``kwargs`` reach them pickled (keep them small: a bound method of the pipeline,
    which loads its datasets in each rank, not a dataset). Each rank uses this process's torch
    thread count (part of the cache key on a CPU), joins the process group (:func:`setup`; NCCL on
    CUDA, gloo on the CPU) and calls ``function``; rank 0's return value comes back. The ranks'
    output is passed through to this process's stderr (progress bars when not quiet); a failed
    rank raises :class:`ScorecastError` quoting the end of it."""
    processes = check_processes(processes, device)
    package_parent = str(Path(__file__).resolve().parents[1])  # so the ranks import this scorecast
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()),
           "PYTHONPATH": os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="scorecast-ddp-") as folder:
        job = Path(folder) / "job.pkl"
        job.write_bytes(pickle.dumps({"function": function, "kwargs": kwargs, "device": device, "threads": torch.get_num_threads()}))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   "-m", "scorecast.distributed", str(job)]
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as ranks:
            tail = b""
            for chunk in iter(lambda: ranks.stdout.read1(1 << 16), b""):
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
                tail = (tail + chunk)[-OUTPUT_TAIL:]
        if ranks.returncode != 0:
            raise ScorecastError(f"data-parallel run of {getattr(function, '__qualname__', function)} on {processes} processes failed "
                                 f"(torchrun exit code {ranks.returncode}); the ranks' output ended with:\n{tail.decode(errors='replace')}")
        return pickle.loads((Path(folder) / RESULT).read_bytes())


def main(argv: list[str]) -> int:
    """One rank of a :func:`launch`: ``python -m scorecast.distributed JOB`` under torchrun."""
    if len(argv) != 1:
        print("usage (one rank, started by scorecast.distributed.launch): torchrun ... -m scorecast.distributed JOB", file=sys.stderr)
        return 2
    job_file = Path(argv[0])
    job = pickle.loads(job_file.read_bytes())
    torch.set_num_threads(job["threads"])
    device = setup(job["device"])
    try:
        result = job["function"](**job["kwargs"], device=device, distributed=True)
        if dist.get_rank() == 0:
            (job_file.parent / RESULT).write_bytes(pickle.dumps(result))
    finally:
        teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

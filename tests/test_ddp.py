"""scorecast.distributed: data-parallel training with DDP (gloo, 2 CPU processes of one thread
each), standard and adversarial, records the same dynamics as a single-process run with the same
global batch, and rank 0 merges every rank's records into canonical order."""

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from scorecast.data import load_dataset
from scorecast.distributed import GlobalBatchNorm2d, merge_to_rank0
from scorecast.models import build_model
from scorecast.train import Dynamics, PGD, Recipe, RecordSpec, train
from scorecast.validation import ScorecastError

# 601 samples in global batches of 64: the last batch of 25 splits 13 / 12 over the two ranks.
N, RECIPE, RECORD = 601, Recipe(epochs=3, batch_size=64, optimizer="sgd", lr=0.05), RecordSpec("train", (1, 2))
# Measured here (both record sources): the largest |difference| between the 2-rank and the
# one-process run was 1.2e-6 for probabilities (true_prob, softmax) and 3.0e-6 for losses, from
# float summation order (per-rank gradient sums, all-reduced BatchNorm statistics); correctness
# flags were identical. 3e-5 is ten times that. The ranks' weights agree exactly.
TOLERANCE = 3e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Adversarial runs: PGD's sign step turns a float-order difference in a gradient component within
# float noise of zero into a whole step in that pixel, after which the runs drift apart (measured
# here: 576 samples differ by 1e-2 in the second epoch, 333 in the third). On these 321 samples, whose last
# global batch of 1 leaves rank 1 an empty shard, no such flip happens in 3 epochs: the largest
# differences measured were 5.1e-7 for probabilities and 3.3e-6 for losses (either view and source),
# as for standard training.
N_ADV, ATTACK = 321, PGD(steps=2)
# (name, record source, attack, samples): adversarial runs record the clean and the attacked view;
# the eval source's pass (batches of 512) cuts 601 samples' last batch of 89 into 45 / 44.
CASES = (("train", "train", None, N), ("eval", "eval", None, N), ("adv-train", "train", ATTACK, N_ADV), ("adv-eval", "eval", ATTACK, N_ADV))


def _worker(rank, world, port, folder):
    """One rank: a data-parallel run per case, each rank's final weights saved."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for name, source, attack, n in CASES:
            model = build_model("tiny_cnn", 10, 1, seed=0)
            dyn = train(model, load_dataset("digits"), np.arange(n), RECIPE, 0, RecordSpec(source, RECORD.softmax_epochs),
                        f"{folder}/{name}", attack=attack, device="cpu", distributed=True)
            assert (dyn is None) == (rank != 0)
            torch.save(model.state_dict(), f"{folder}/{name}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_record_the_single_process_dynamics(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for name, source, attack, n in CASES:
        single = train(build_model("tiny_cnn", 10, 1, seed=0), load_dataset("digits"), np.arange(n), RECIPE, 0,
                       RecordSpec(source, RECORD.softmax_epochs), tmp_path / f"single-{name}", attack=attack, device="cpu")
        merged = Dynamics(tmp_path / name)
        np.testing.assert_array_equal(merged.indices, single.indices)
        assert merged.views == single.views == (["clean", "adv"] if attack else ["clean"])
        for view in merged.views:
            for kind in ("true_prob", "loss", "softmax"):
                np.testing.assert_allclose(getattr(merged, kind)(view), getattr(single, kind)(view), rtol=0, atol=TOLERANCE, err_msg=f"{name} {view} {kind}")
            assert (merged.true_prob(view) > 0).all()  # every sample recorded in every epoch: no zero left by the merge
            np.testing.assert_array_equal(merged.correct(view), single.correct(view))
        weights = [torch.load(tmp_path / f"{name}-rank{r}.pt") for r in (0, 1)]
        for key in weights[0]:
            torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)


def test_global_batchnorm_in_one_process_is_batchnorm():
    """World of one: GlobalBatchNorm2d computes BatchNorm2d's output, gradients and running stats."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        x = torch.randn(6, 3, 4, 4, dtype=torch.float64, requires_grad=True)
        plain, glob = torch.nn.BatchNorm2d(3).double(), GlobalBatchNorm2d(3).double()
        out_plain, out_glob = plain(x), glob(x)
        torch.testing.assert_close(out_glob, out_plain)
        g_plain = torch.autograd.grad(out_plain.pow(3).sum(), x)[0]
        g_glob = torch.autograd.grad(out_glob.pow(3).sum(), x)[0]
        torch.testing.assert_close(g_glob, g_plain)
        torch.testing.assert_close(glob.running_var, plain.running_var)
        torch.testing.assert_close(glob.running_mean, plain.running_mean)
        merged = merge_to_rank0(torch.tensor([True, False]))
        assert merged.dtype == torch.bool and merged.tolist() == [True, False]
    finally:
        dist.destroy_process_group()


def test_distributed_without_a_process_group_is_refused(tmp_path):
    ds, model = load_dataset("digits"), build_model("tiny_cnn", 10, 1, seed=0)
    with pytest.raises(ScorecastError, match="process group.*torchrun"):
        train(model, ds, np.arange(50), Recipe(epochs=1), 0, device="cpu", distributed=True)

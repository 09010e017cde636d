"""Shared test settings: one torch thread (2-core CI machines), quiet progress bars."""

import os

os.environ.setdefault("SCORECAST_QUIET", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

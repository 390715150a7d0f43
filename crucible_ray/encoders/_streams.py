"""Encoding many texts: length-sorted batches, spread over single-threaded streams on a CPU.

A small transformer such as MiniLM keeps a CPU's cores poorly busy when one batch at a time runs
on all of them: its matrices are small, so the threads spend much of each operation waiting at
OpenMP's barriers. Two batches at a time, each on one thread, keep the same cores busier for
fewer CPU-seconds (measured in docs/mining.md, "Encoding on a CPU"). :func:`encode_sorted` does
that when the caller runs with more than one torch thread: each stream is a Python thread with
one torch thread, taking the next batch in length order.

With streams, every batch is computed on one thread, even when there is only one batch, so the
vectors do not depend on how many streams there were (one, two or eight give the same bits as a
single-core machine); against one multi-threaded stream they differ by float rounding only. Several
batches are in flight at once, so a streaming encoder keeps its batches small on a CPU
(:data:`CPU_STREAM_BATCH`): the peak memory is then about that of one batch per core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

__all__ = ["CPU_STREAM_BATCH", "encode_sorted"]

# Texts per batch for a streaming encoder on a CPU, whatever was asked for: sentence-transformers'
# default, about 50 MB of activations per stream for MiniLM at 256 tokens (a batch of 256 would be
# about 800 MB, on every core at once). Fixed, not derived from the core count, so the batches (and
# the bits) are the same on every machine.
CPU_STREAM_BATCH = 32


def encode_sorted(
    texts: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    *,
    batch_size: int,
    dim: int = 0,
    streams: int = 1,
) -> np.ndarray:
    """``embed`` over ``texts`` in batches of similar length; returns (n, d) float32 in input order
    (``dim``: the width returned for no texts).

    Texts are batched longest first, so a padded (transformer) batch holds texts of similar length.
    With ``streams > 1`` the batches run on up to that many threads, each with one torch thread
    (inference mode on in each), even a single batch; the process's torch thread count is put back
    afterwards. An error in a batch is raised here once the running batches end; the batches not yet
    started are not run.
    """
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    batches = [[texts[j] for j in order[i : i + batch_size]] for i in range(0, len(texts), batch_size)]
    if streams <= 1:
        with torch.inference_mode():
            chunks = [embed(b) for b in batches]
    else:
        threads = torch.get_num_threads()

        def run(batch: list[str]) -> np.ndarray:
            with torch.inference_mode():  # thread-local: each stream turns it on for itself
                return embed(batch)

        # One batch too runs in a stream, on one thread: the bits never depend on the batch count.
        pool = ThreadPoolExecutor(
            min(streams, len(batches)), thread_name_prefix="crucible-encode", initializer=_one_thread
        )
        try:
            try:
                chunks = list(pool.map(run, batches))  # in submission order: longest batches first
            finally:
                # On an error or Ctrl-C the batches not yet started are dropped: the running ones finish.
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            # torch's thread count is a process-wide value that every thread starting torch work later
            # takes as its own (the streams set it to 1): put the caller's back, even after a second
            # Ctrl-C during the shutdown above.
            torch.set_num_threads(threads)
    out = np.empty((len(texts), chunks[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(chunks)
    return out


def _one_thread() -> None:
    torch.set_num_threads(1)

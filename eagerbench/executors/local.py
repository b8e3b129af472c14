"""The local executor: worker processes on this machine, one batch after another."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from eagerbench.results import CellSpec
from eagerbench.runner import batch_key, run_batch, run_cell, warm_compiler


class LocalExecutor:
    name = "local"

    def settings(self) -> dict:
        return {"name": self.name}

    def at(self, folder) -> "LocalExecutor":
        return self   # keeps nothing in the run's folder

    def run_one(self, cell: CellSpec, timeout: float) -> dict:
        return run_cell(cell, timeout)

    def measure(self, batches: list[list[CellSpec]], timeout: float,
                progress) -> Iterator[tuple[CellSpec, dict]]:
        # torch.compile keeps compiled graphs on disk between processes: with the user's cache
        # a first call would depend on what ran before. Processes start from a template holding
        # only the compiler's one-time set-up. The processes of later repeats reuse the graphs
        # the first compiled (their steady state is the same code; a compile cost and a first
        # call are only ever taken from a process that compiled cold).
        with tempfile.TemporaryDirectory(prefix="eagerbench-caches-") as caches:
            template = os.path.join(caches, "template")
            os.mkdir(template)
            setup = warm_compiler([c for batch in batches for c in batch], template)
            if setup is not None:
                progress.say(f"eagerbench: torch.compile's one-time set-up took {setup:.1f} s "
                             f"(done once, kept out of every cell's compile cost)")
            shared: dict[tuple, str] = {}
            for batch in batches:
                progress.starting(batch[0])
                setting = batch_key(batch[0])[:1] + batch_key(batch[0])[2:]   # all but repeat
                if setting not in shared:
                    shared[setting] = os.path.join(caches, str(len(shared)))
                    shutil.copytree(template, shared[setting])
                # closing: a failed write or an interrupt stops the worker now, not at collection
                with contextlib.closing(run_batch(batch, timeout, progress.phase,
                                                  shared[setting])) as landed:
                    for position, (cell, result) in enumerate(landed):
                        yield cell, result
                        if position + 1 < len(batch):
                            progress.starting(batch[position + 1])

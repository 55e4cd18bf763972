"""Resumable fine-tuning: the whole training state, saved every few minutes beside the output
folder, so that a killed ``expnet finetune`` goes on from its last checkpoint when rerun and ends
with the same weights as a run never stopped.

The state is the model's weights, AdamW's moments, the learning-rate schedule, the epoch's shuffle
(the generator's state when the epoch drew its order), the random state dropout draws from, and
where in the epoch training stopped. Tensors go to safetensors, the rest to JSON (no pickles). A
checkpoint records a fingerprint of what decides the training (backbone, settings, seed, the
training examples); one made for anything else is ignored and replaced.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from expnet.io import atomic_directory, atomic_write_json

STATE_NAME = "state.json"
TENSORS_NAME = "tensors.safetensors"


@dataclass
class Resumed:
    """Where a checkpoint left training: the epoch, the batches of it already done, the steps in
    all, and the shuffle generator's state when that epoch drew its order."""

    epoch: int
    batches_done: int
    steps_done: int
    epoch_generator_state: torch.Tensor


SUFFIX = ".finetune-checkpoint"


def checkpoint_folder(out: str | Path) -> Path:
    """A hidden sibling of the output folder (never inside it: the output is replaced whole)."""
    out = Path(out)
    return out.parent / f".{out.name}{SUFFIX}"


def is_checkpoint(name: str) -> bool:
    """Whether ``name`` is a checkpoint folder's (a benchmark's classifiers/ holds them while it runs)."""
    return name.startswith(".") and name.endswith(SUFFIX)


def save_checkpoint(folder: Path, fingerprint: str, model, optimiser, schedule, resumed: Resumed) -> None:
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    optimiser_state = optimiser.state_dict()
    for param, values in optimiser_state["state"].items():
        for name, value in values.items():
            tensors[f"optimiser.{param}.{name}"] = torch.as_tensor(value).detach().cpu().clone().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.epoch_generator"] = resumed.epoch_generator_state
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = cuda_state
    state = {
        "fingerprint": fingerprint,
        "epoch": resumed.epoch,
        "batches_done": resumed.batches_done,
        "steps_done": resumed.steps_done,
        "param_groups": optimiser_state["param_groups"],
        "schedule": schedule.state_dict(),
    }
    with atomic_directory(folder) as staging:
        save_file(tensors, str(staging / TENSORS_NAME))
        atomic_write_json(staging / STATE_NAME, state)


def load_checkpoint(folder: Path, fingerprint: str, model, optimiser, schedule) -> Resumed | None:
    """Restore the training state saved in ``folder`` for this ``fingerprint``, or None (no
    checkpoint, a damaged one, or one of another training). Everything is read and checked
    against the model before anything is changed, so a None leaves the fresh state as it was."""
    try:
        state = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
            return None
        tensors = load_file(str(folder / TENSORS_NAME))
        weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimiser."):
                _, param, name = key.split(".", 2)
                moments.setdefault(int(param), {})[name] = value
        expected = model.state_dict()
        if weights.keys() != expected.keys() or any(weights[k].shape != expected[k].shape for k in weights):
            return None
        resumed = Resumed(int(state["epoch"]), int(state["batches_done"]), int(state["steps_done"]), tensors["rng.epoch_generator"])
        random_state = tensors["rng.torch"]
        param_groups, schedule_state = state["param_groups"], state["schedule"]
    except Exception:  # noqa: BLE001 (unreadable, cut short, of another layout: train from the start)
        return None
    model.load_state_dict(weights)
    optimiser.load_state_dict({"state": moments, "param_groups": param_groups})
    schedule.load_state_dict(schedule_state)
    torch.set_rng_state(random_state)
    cuda_states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"rng.cuda.{i}" in tensors]
    if cuda_states and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    return resumed


def clear_checkpoint(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)

"""Fine-tuning a sequence classifier on a task's labels, saved as a Hugging Face folder.

Texts are the dataset's words joined by spaces, encoded by the same code path that explanations
use, so the classifier is trained on exactly the token sequences it will later be explained on.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from scipy.stats import binomtest
from tqdm.auto import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

from expnet import __version__
from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError, NotAboveChanceWarning, require_number, require_whole
from expnet.io import atomic_directory, atomic_write_json, folder_state, json_digest
from expnet.models.checkpoint import Resumed, checkpoint_folder, clear_checkpoint, load_checkpoint, save_checkpoint
from expnet.models.classifier import (
    Classifier,
    load_config,
    pick_device,
    quiet_transformers,
    require_model_files,
    usable_positions,
)
from expnet.models.readout import align_padding
from expnet.seeding import seed_everything
from expnet.words import encode_words

# A kill loses at most this much training (a MiniLM checkpoint: 260 MB, about 0.5 s to write here).
CHECKPOINT_SECONDS = 300


@dataclass
class FinetuneSettings:
    epochs: int = 1
    max_length: int = 128
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_examples: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "max_length", "batch_size"):
            require_whole(name, getattr(self, name))
        if self.max_examples is not None:
            require_whole("max_examples", self.max_examples)
        require_number("learning_rate", self.learning_rate, 0, open_low=True)
        require_number("weight_decay", self.weight_decay, 0)
        require_number("warmup_ratio", self.warmup_ratio, 0, 1)


@torch.no_grad()
def dev_metrics(classifier: Classifier, examples: Sequence[RationaleExample], batch_size: int = 64) -> dict | None:
    """Accuracy on ``examples``, its Wilson 95% interval, and the accuracy of always predicting
    their commonest class: on a few dozen texts, 0.55 may be no better than that. None when some
    logit is not finite (a diverged model, whose argmax would pass for predictions)."""
    correct = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        logits = classifier.predict_logits(classifier.encode([e.words for e in chunk]))
        if not torch.isfinite(logits).all():
            return None
        labels = torch.tensor([e.label for e in chunk], device=logits.device)
        correct += int((logits.argmax(-1) == labels).sum())
    interval = binomtest(correct, len(examples)).proportion_ci(confidence_level=0.95, method="wilson")
    commonest = Counter(e.label for e in examples).most_common(1)[0][1]
    return {
        "dev_accuracy": correct / len(examples),
        "dev_accuracy_interval": [round(float(interval.low), 4), round(float(interval.high), 4)],
        "dev_majority_accuracy": commonest / len(examples),
    }


def diverged(what: str, settings: FinetuneSettings) -> str:
    return (
        f"fine-tuning diverged: {what}; lower --learning-rate (it is {settings.learning_rate:g}; the default is 5e-5). "
        "Nothing was saved"
    )


def describe_accuracy(metrics: dict) -> str:
    """'0.550 [0.398, 0.693] of 40, majority 0.500': the 95% interval, the dev examples and the
    commonest class's rate, short enough for an 80-column line (the accuracy alone for a
    classifier saved before the interval was measured)."""
    if "dev_accuracy_interval" not in metrics:
        return f"{metrics['dev_accuracy']:.3f}"
    low, high = metrics["dev_accuracy_interval"]
    return (
        f"{metrics['dev_accuracy']:.3f} [{low:.3f}, {high:.3f}] of {metrics['dev_examples']}, "
        f"majority {metrics['dev_majority_accuracy']:.3f}"
    )


def warn_if_not_above_chance(metrics: dict) -> None:
    """One warning when the dev accuracy's interval reaches down to the commonest class's rate."""
    low, high = metrics["dev_accuracy_interval"]
    if low <= metrics["dev_majority_accuracy"]:
        warnings.warn(
            f"dev accuracy {metrics['dev_accuracy']:.3f} (95% interval {low:.3f} to {high:.3f}, {metrics['dev_examples']} "
            f"examples) is not clearly above the {metrics['dev_majority_accuracy']:.3f} of always predicting the commonest "
            "class: the classifier may have learned little, and explanations of it say little; train on more examples "
            "or longer (--epochs), or measure on more dev examples",
            NotAboveChanceWarning,
            stacklevel=3,
        )


def finetune(
    backbone: str,
    train: Sequence[RationaleExample],
    dev: Sequence[RationaleExample],
    label_names: Sequence[str],
    out: str | Path,
    settings: FinetuneSettings,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    trust_remote_code: bool = False,
) -> dict:
    """Train, measure dev accuracy, and save model + tokenizer + metrics.json atomically."""
    seed_everything(seed)
    if not train:
        raise ExpnetError("no training examples for fine-tuning; check --data-dir and --task")
    train = list(train)[: settings.max_examples] if settings.max_examples else list(train)
    # A class with no training example would be learned as never true (a task file sorted by class,
    # cut by --max-examples, is the usual cause): refused rather than trained on.
    missing = [name for i, name in enumerate(label_names) if not any(e.label == i for e in train)]
    if missing:
        raise ExpnetError(
            f"the {len(train)} training examples have no example of class {', '.join(map(repr, missing))}; "
            "raise --max-examples (the data may be sorted by class) or give data with every class"
        )
    config = load_config(backbone, trust_remote_code)  # one clear error if the backbone does not exist
    require_model_files(backbone)
    if settings.max_length > usable_positions(config):
        raise ExpnetError(
            f"--max-length {settings.max_length} is more than the {usable_positions(config)} tokens "
            f"{backbone} can take; give at most that"
        )
    target = pick_device(device)
    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(backbone, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        attn_implementation="eager",
        ignore_mismatched_sizes=True,  # a classifier with another label count can be re-headed
    )
    align_padding(model, tokenizer, trained=False)  # its head learns to read where the pad rule says
    model.to(target)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimiser, int(settings.warmup_ratio * total_steps), total_steps)
    # What decides the training: a checkpoint of anything else is not resumed from.
    fingerprint = json_digest(
        {
            "expnet_version": __version__,
            "backbone": str(backbone),
            "backbone_files": folder_state(backbone),
            "settings": asdict(settings),
            "seed": seed,
            "labels": list(label_names),
            "train": [[e.id, e.label, e.words] for e in train],
        }
    )
    checkpoint = checkpoint_folder(out)
    resumed = load_checkpoint(checkpoint, fingerprint, model, optimiser, schedule)
    if resumed is not None:  # the shuffle of the epoch it stopped in is drawn again, the same
        generator.set_state(resumed.epoch_generator_state)
    first_epoch = resumed.epoch if resumed else 0
    step = resumed.steps_done if resumed else 0
    started = last_saved = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc="fine-tune", disable=not progress)
    for epoch in range(first_epoch, settings.epochs):
        model.train()
        epoch_generator_state = generator.get_state()
        order = torch.randperm(len(train), generator=generator)
        skip = resumed.batches_done if resumed and epoch == resumed.epoch else 0
        for batch_index, start in enumerate(range(0, len(train), settings.batch_size)):
            if batch_index < skip:
                continue
            rows = [train[i] for i in order[start : start + settings.batch_size].tolist()]
            batch = encode_words(tokenizer, [e.words for e in rows], settings.max_length).to(target)
            labels = torch.tensor([e.label for e in rows], device=target)
            inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            if batch.token_type_ids is not None:
                inputs["token_type_ids"] = batch.token_type_ids
            loss = model(**inputs, labels=labels).loss
            step += 1
            if not torch.isfinite(loss):  # a diverged model would be saved, and explained, as if it worked
                bar.close()
                clear_checkpoint(checkpoint)  # a rerun from it would diverge again
                raise ExpnetError(diverged(f"the loss became {loss.item()} at step {step} of {total_steps}", settings))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if time.perf_counter() - last_saved > CHECKPOINT_SECONDS and step < total_steps:
                done = Resumed(epoch, batch_index + 1, step, epoch_generator_state)
                save_checkpoint(checkpoint, fingerprint, model, optimiser, schedule, done)
                last_saved = time.perf_counter()
    bar.close()
    train_seconds = time.perf_counter() - started
    model.eval()
    # The last update is checked here: its loss was finite, its result need not be.
    if not all(torch.isfinite(parameter).all() for parameter in model.parameters()):
        clear_checkpoint(checkpoint)
        raise ExpnetError(diverged("the weights are not finite after the last step", settings))
    classifier = Classifier.from_parts(model, tokenizer, settings.max_length)
    # Finite weights can still overflow: the dev pass checks the logits (a few training texts
    # when there is no dev split).
    measured = dev_metrics(classifier, dev or train[:16])
    if measured is None:
        clear_checkpoint(checkpoint)
        raise ExpnetError(diverged("the logits are not finite after the last step", settings))
    metrics = {
        **(measured if dev else {"dev_accuracy": None}),
        "dev_examples": len(dev),
        "train_examples": len(train),
        "train_seconds": round(train_seconds, 1),  # this run's: a resumed one counts from its checkpoint
        "resumed_at_step": resumed.steps_done if resumed else None,
        "backbone": backbone,
        "label_names": list(label_names),
        "seed": seed,
        "settings": asdict(settings),
    }
    # The saved config keeps the training length so explanations truncate where training did.
    model.config.expnet_max_length = settings.max_length
    with atomic_directory(out) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        atomic_write_json(staging / "metrics.json", metrics)
    clear_checkpoint(checkpoint)
    if dev:
        warn_if_not_above_chance(metrics)
    return metrics

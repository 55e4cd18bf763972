"""What a benchmark run does, as one dataclass: defaults, the ``--quick`` preset, TOML/YAML files.

A config file only names what differs from the defaults (or from the quick preset with
``--quick``). Top-level keys and tables::

    seed = 0                      # every seed: sampling, fine-tuning, ExpNet, explainers
    explainers = "all"            # or a list of registered names
    exclude_explainers = []
    slow_explainers = ["attention_flow", "value_zeroing_rollout"]   # plus every explainer of a family in slow_families
    slow_families = ["perturbation"]
    batch_size = 16               # texts per explainer batch (speed is measured at this size)
    threads = 0                   # torch CPU threads; 0 = torch's default
    gold_rule = "majority"        # or "union"
    backbone = ""                 # fine-tuning backbone ("" = the offline default, MiniLM-L6)
    selection_metric = "auroc_seen"  # validation metric that picks the ExpNet variant
    validation_fraction = 0.2     # share of each training task's rationale data kept for selection
    in_domain = true              # also train ExpNet on the held-out task (upper reference)
    unlabelled = { teachers = ["saliency"], max_texts = 1000 }  # a row of its own: ExpNet + the held-out
                                  # task's unlabelled (classifier-training) texts; enabled = false: none
    report_examples = 3           # examples highlighted per task in report.html
    candidates = ["last", "all_layers"]   # variants that may be selected (default: every variant)

    [tasks.hatexplain]            # one table per task, in run order; a JSONL path works too:
    max_examples = 300            # [tasks."data/my_task.jsonl"]
    slow_max_examples = 100       # smaller common subset (a prefix) for slow explainers
    expnet_train_max_examples = 2000
    classifier = ""               # an existing classifier folder ("" = fine-tune one into OUT)
    eval_fraction = 0.3           # JSONL only: share of the file held out for evaluation
    finetune = { epochs = 2, max_length = 96, batch_size = 32, max_examples = 6000 }
    explainer_settings.lime = { n_samples = 100 }   # per-task budget overrides

    [explainer_settings.lime]     # constructor settings per explainer, all tasks
    n_samples = 200

    [expnet]                      # ExpNetSettings fields (hidden_size, max_epochs, only_correct ...)
    max_epochs = 60

    [variants.last]               # ExpNet variants: layers, directions, values, in_text
    layers = "last"
    directions = ["cls_to_token", "token_to_cls"]
    values = ["attention"]        # and/or "attention_x_gradient"
    in_text = false               # also each value standardised within its text
    word_properties = []          # stopword, punctuation, word_length, position (FeatureSpec)

    [faithfulness]
    removals = ["mask", "delete"]
    shown = "mask"                # the removal the leaderboards show
    bins = [0.01, 0.05, 0.10, 0.20, 0.50]
    kendall_removals = ["mask"]   # leave-one-out costs one pass per word: pick removals here
    batch_size = 64               # rows per forward pass
    all_variants = true           # faithfulness of every ExpNet variant (false: selected + in-domain only)
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from expnet.benchmark.presets import DEFAULT_CANDIDATES, DEFAULTS, QUICK
from expnet.data import JSONL_EVAL_FRACTION
from expnet.errors import ExpnetError
from expnet.explainers.distillation import TeacherSettings
from expnet.metrics.faithfulness import DEFAULT_BINS, REMOVALS
from expnet.metrics.table import SELECTABLE
from expnet.models.finetune import FinetuneSettings
from expnet.network.features import DIRECTIONS, FeatureSpec
from expnet.network.training import ExpNetSettings
from expnet.pipeline import finetune_settings


@dataclass
class TaskConfig:
    name: str  # a built-in task or a JSONL path
    max_examples: int | None = 200
    slow_max_examples: int | None = None  # None: the same examples as everyone
    expnet_train_max_examples: int | None = None
    classifier: str | None = None
    eval_fraction: float = JSONL_EVAL_FRACTION
    finetune: dict = field(default_factory=dict)
    explainer_settings: dict[str, dict] = field(default_factory=dict)

    def finetune_settings(self) -> FinetuneSettings:
        """The task's fine-tuning defaults (its ``TaskSpec``; generic ones for a JSONL file) under
        the ``finetune`` table's settings."""
        return finetune_settings(self.name, self.finetune)

    @property
    def n_slow(self) -> int | None:
        limits = [n for n in (self.slow_max_examples, self.max_examples) if n is not None]
        return min(limits) if limits else None


@dataclass
class VariantConfig:
    """One ExpNet variant: its features (``FeatureSpec``) and learner (``ExpNetSettings``)."""

    layers: str | list[int] = "last"
    directions: list[str] = field(default_factory=lambda: list(DIRECTIONS))
    values: list[str] = field(default_factory=lambda: ["attention"])
    in_text: bool = False  # also per-text standardised features (FeatureSpec.in_text)
    signals: list[str] = field(default_factory=list)
    head_pooling: str = "none"
    views: list[str] = field(default_factory=list)
    word_properties: list[str] = field(default_factory=list)
    loss: str = "focal"
    anchor: str | None = None
    soft_labels: bool = False

    def settings(self, base: dict) -> ExpNetSettings:
        """``ExpNetSettings`` with the [expnet] table's ``base`` under this variant's choices."""
        chosen = {
            "layers": self.layers, "directions": tuple(self.directions), "feature_values": tuple(self.values),
            "in_text": self.in_text, "signals": tuple(self.signals), "head_pooling": self.head_pooling,
            "views": tuple(self.views), "word_properties": tuple(self.word_properties), "loss": self.loss, "anchor": self.anchor, "soft_labels": self.soft_labels,
        }
        return ExpNetSettings(**{**base, **chosen})


@dataclass
class FaithfulnessConfig:
    enabled: bool = True
    removals: list[str] = field(default_factory=lambda: ["mask", "delete"])
    shown: str = "mask"
    bins: list[float] = field(default_factory=lambda: list(DEFAULT_BINS))
    kendall_removals: list[str] = field(default_factory=lambda: ["mask"])
    batch_size: int = 64
    all_variants: bool = True  # False: only the selected and the in-domain ExpNet (ablation rows show "-")


@dataclass
class BenchmarkConfig:
    tasks: list[TaskConfig] = field(default_factory=list)
    explainers: str | list[str] = "all"
    exclude_explainers: list[str] = field(default_factory=list)
    slow_explainers: list[str] = field(default_factory=lambda: ["attention_flow", "value_zeroing_rollout"])
    slow_families: list[str] = field(default_factory=lambda: ["perturbation"])
    explainer_settings: dict[str, dict] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 16
    threads: int = 0  # torch CPU threads (0 = torch's default); 1 is fastest on a small, busy machine
    gold_rule: str = "majority"
    backbone: str | None = None
    expnet: dict = field(default_factory=dict)
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    # Threshold-free: between tasks of different rationale rates the 0.5 threshold's calibration
    # does not transfer, while the ranking it scores is what top-k binarisation uses. Over the words
    # the classifier read: on texts cut at its length the gold words beyond the cut rank every
    # variant alike (movies: 0.46-0.48 AUROC for all ten variants), which only adds noise.
    selection_metric: str = "auroc_seen"
    validation_fraction: float = 0.2
    in_domain: bool = True
    unlabelled: dict = field(default_factory=dict)  # TeacherSettings fields; enabled = false: no such row
    faithfulness: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    report_examples: int = 3
    preset: str = "default"

    def expnet_settings(self, variant: str) -> ExpNetSettings:
        return self.variants[variant].settings(self.expnet)

    def teacher(self) -> TeacherSettings | None:
        """How the adapted row's unlabelled texts are labelled; None when there is no such row."""
        settings = {k: v for k, v in self.unlabelled.items() if k != "enabled"}
        if not self.unlabelled or not self.unlabelled.get("enabled", True):
            return None
        return TeacherSettings(**{**settings, "teachers": tuple(settings.get("teachers", ["saliency"]))})

    def explainer_kwargs(self, name: str, task: TaskConfig) -> dict:
        return {**self.explainer_settings.get(name, {}), **task.explainer_settings.get(name, {})}

    def to_dict(self) -> dict:
        return asdict(self)


# --- loading ------------------------------------------------------------------------------
def read_file(path: str | Path) -> dict:
    """A TOML (tomllib) or YAML (PyYAML, if installed) file as a dict."""
    path = Path(path)
    if not path.is_file():
        raise ExpnetError(f"config file {path} not found; give a .toml or .yaml file (see benchmarks/full.toml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ExpnetError(f"config file {path} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ExpnetError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or write the config as TOML") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ExpnetError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ExpnetError(f"{path}: not valid TOML ({error})") from None
    if not isinstance(data, dict):
        raise ExpnetError(f"{path}: the config must be a table of settings, got {type(data).__name__}")
    return data


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key == "tasks":
            # The file's task list replaces the preset's; a task both name keeps the preset's settings.
            listed = {str(t): {} for t in value} if isinstance(value, list) else value
            before = out.get(key) or {}
            out[key] = {
                name: _merge(before.get(name, {}), extra or {}) if isinstance(extra, dict | None) else extra
                for name, extra in listed.items()
            }
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _known(data: dict, cls, where: str, extra: tuple[str, ...] = ()) -> None:
    names = {f.name for f in fields(cls)} | set(extra)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ExpnetError(f"unknown config key {unknown[0]!r} in {where}; use one of {', '.join(sorted(names))}")


def _optional_int(value, where: str) -> int | None:
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExpnetError(f"{where} must be a positive whole number, got {value!r}")
    return value


def _task(name: str, data: dict) -> TaskConfig:
    where = f"[tasks.{name}]"
    if not isinstance(data, dict):
        raise ExpnetError(f"{where} must be a table of settings, got {data!r}")
    _known(data, TaskConfig, where)
    task = TaskConfig(**{**data, "name": name})  # the table's name, not a "name" key in it
    for limit in ("max_examples", "slow_max_examples", "expnet_train_max_examples"):  # "" or 0: no limit
        setattr(task, limit, _optional_int(getattr(task, limit), f"{where} {limit}"))
    _check_types(task, f"{where} ")  # before the range checks, which would compare a string
    task.classifier = task.classifier or None
    if not 0 < task.eval_fraction < 1:
        raise ExpnetError(f"{where} eval_fraction must be between 0 and 1, got {task.eval_fraction}")
    unknown = sorted(set(task.finetune) - {f.name for f in fields(FinetuneSettings)})
    if unknown:
        raise ExpnetError(f"unknown fine-tuning setting {unknown[0]!r} in {where}; use FinetuneSettings fields")
    return task


def build(data: dict) -> BenchmarkConfig:
    """A checked ``BenchmarkConfig`` from merged settings; one-line errors for every mistake."""
    _known(data, BenchmarkConfig, "the config")
    data = copy.deepcopy(data)
    raw_tasks = data.pop("tasks", {})
    if isinstance(raw_tasks, list):
        raw_tasks = {str(t): {} for t in raw_tasks}
    tasks = [_task(str(name), settings or {}) for name, settings in raw_tasks.items()]
    if len(tasks) < 2:
        named = ", ".join(t.name for t in tasks) or "none"
        raise ExpnetError(
            f"the benchmark leaves one task out at a time: give at least two tasks (the config names {named}; "
            "a config's tasks replace the preset's, so name every task to run, e.g. [tasks.hatexplain] and [tasks.sst2])"
        )
    variants = {}
    for name, spec in data.pop("variants", {}).items():
        if not isinstance(spec, dict):
            raise ExpnetError(f"[variants.{name}] must be a table with layers, directions and values")
        _known(spec, VariantConfig, f"[variants.{name}]")
        variant = VariantConfig(**spec)
        if not (variant.layers in ("last", "all") or isinstance(variant.layers, list)):
            raise ExpnetError(f"[variants.{name}] layers must be \"last\", \"all\" or a list of layer numbers")
        try:  # every other choice is checked where it is defined, on a stand-in layout
            settings = variant.settings({})
            FeatureSpec.for_model(
                max([*variant.layers, 0]) + 1 if isinstance(variant.layers, list) else 2, 2, settings.layers, settings.directions,
                values=settings.feature_values, in_text=settings.in_text, signals=settings.signals,
                head_pooling=settings.head_pooling, views=settings.views or None,
                word_properties=settings.word_properties,
            )
        except ExpnetError as error:
            raise ExpnetError(f"[variants.{name}]: {error}") from None
        variants[name] = variant
    faith = data.pop("faithfulness", {})
    _known(faith, FaithfulnessConfig, "[faithfulness]")
    faithfulness = FaithfulnessConfig(**faith)
    config = BenchmarkConfig(tasks=tasks, variants=variants, faithfulness=faithfulness, **data)
    _check(config)
    return config


# A field's annotation -> (accepted Python types, what to tell the user). A TOML value of another
# type would be misread, not refused: a string exclude_explainers is a substring test, "no" is true.
_NUMBER = (int, float)
_SIMPLE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "a whole number"),
    "int | None": ((int,), "a whole number"),
    "float": (_NUMBER, "a number"),
    "bool": ((bool,), "true or false"),
    "str": ((str,), "a string"),
    "str | None": ((str,), "a string"),
}
_LIST_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "list[str]": ((str,), "a list of strings, e.g. [\"a\", \"b\"]"),
    "list[float]": (_NUMBER, "a list of numbers"),
}


def _is(value, accepted: tuple[type, ...]) -> bool:
    # bool is an int in Python; true is not a seed, nor 1 a boolean.
    return isinstance(value, accepted) and (isinstance(value, bool) == (bool in accepted))


def _check_types(settings, where: str) -> None:
    """Every plainly typed field of a config dataclass holds a value of its type (None where allowed)."""
    for spec in fields(settings):
        value = getattr(settings, spec.name)
        if spec.type in _SIMPLE_TYPES:
            accepted, words = _SIMPLE_TYPES[spec.type]
            good = _is(value, accepted) or (value is None and spec.type.endswith("| None"))
        elif spec.type in _LIST_TYPES:
            accepted, words = _LIST_TYPES[spec.type]
            good = isinstance(value, list) and all(_is(v, accepted) for v in value)
        else:
            continue
        if not good:
            raise ExpnetError(f"{where}{spec.name} = {value!r}: give {words}")


def _check(config: BenchmarkConfig) -> None:
    _check_types(config, "")
    _check_types(config.faithfulness, "[faithfulness] ")
    for task in config.tasks:
        _check_types(task, f"[tasks.{task.name}] ")
    for name, variant in config.variants.items():
        _check_types(variant, f"[variants.{name}] ")
    if not 0 <= config.seed < 2**32:
        raise ExpnetError(f"seed = {config.seed}: give a whole number from 0 to {2**32 - 1}")
    if config.report_examples < 0:
        raise ExpnetError(f"report_examples = {config.report_examples}: give 0 or more")
    if not config.variants:
        raise ExpnetError("no ExpNet variants: give at least [variants.last]")
    missing = [c for c in config.candidates if c not in config.variants]
    if missing or not config.candidates:
        raise ExpnetError(f"candidate variant {missing[0] if missing else '(none)'!r} is not defined under [variants]")
    if config.selection_metric not in SELECTABLE:
        raise ExpnetError(f"selection_metric {config.selection_metric!r}: use one of {', '.join(SELECTABLE)}")
    if config.gold_rule not in ("majority", "union"):
        raise ExpnetError(f"gold_rule {config.gold_rule!r}: use majority or union")
    if not 0 < config.validation_fraction < 1:
        raise ExpnetError(f"validation_fraction must be between 0 and 1, got {config.validation_fraction}")
    config.teacher()  # one-line errors for bad teacher settings, before any work
    if config.threads < 0:
        raise ExpnetError(f"threads must be 0 (torch's default) or more, got {config.threads}")
    if config.batch_size < 1 or config.faithfulness.batch_size < 1:
        raise ExpnetError("batch sizes must be at least 1")
    faith = config.faithfulness
    for removal in [*faith.removals, *faith.kendall_removals, faith.shown]:
        if removal not in REMOVALS:
            raise ExpnetError(f"[faithfulness] removal {removal!r}: use one of {', '.join(REMOVALS)}")
    if faith.enabled and faith.shown not in faith.removals:
        raise ExpnetError(f"[faithfulness] shown = {faith.shown!r} must be one of removals {faith.removals}")
    if not faith.bins or any(not 0 < b <= 1 for b in faith.bins) or sorted(set(faith.bins)) != list(faith.bins):
        raise ExpnetError(f"[faithfulness] bins must be increasing fractions in (0, 1], got {faith.bins}")
    unknown = sorted(set(config.expnet) - set(ExpNetSettings.__dataclass_fields__))
    if unknown:
        raise ExpnetError(f"unknown [expnet] setting {unknown[0]!r}; use ExpNetSettings fields")
    for name in config.variants:  # the values too, before any classifier is fine-tuned
        try:
            config.expnet_settings(name)
        except ExpnetError as error:
            raise ExpnetError(f"[expnet] with [variants.{name}]: {error}") from None
    if isinstance(config.explainers, str) and config.explainers != "all":
        config.explainers = [n.strip() for n in config.explainers.split(",") if n.strip()]
    config.backbone = config.backbone or None
    names = [t.name for t in config.tasks]
    if len(set(names)) != len(names):
        raise ExpnetError("a task is listed twice")


def load_config(path: str | Path | None = None, quick: bool = False) -> BenchmarkConfig:
    """Defaults (or the quick preset), then the file's settings on top."""
    base = QUICK if quick else DEFAULTS
    data = _merge(base, read_file(path)) if path else copy.deepcopy(base)
    try:
        return build(data)
    except TypeError as error:  # a wrongly typed value reaching a dataclass
        raise ExpnetError(f"bad config value: {error}") from None

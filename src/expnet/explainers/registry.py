"""The explainer registry, in the manner of inseq: names -> classes, folders -> ExpNet, and the
pretrained ExpNets that ship inside the package, by name."""

from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path

from expnet.errors import ExpnetError
from expnet.explainers.base import Explainer, ExplainerInfo

_REGISTRY: dict[str, type[Explainer]] = {}
# Shipped ExpNets: name -> folder under expnet/pretrained (config.json, model.safetensors, README.md
# = the model card). They are trained on every task's rationales, so the benchmark never lists them
# among the baselines of a held-out task (``explainer_names`` leaves them out).
PRETRAINED = {"expnet": "expnet-minilm-transfer"}


def register(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator: make an explainer available by its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"explainer name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def explainer_names() -> list[str]:
    return sorted(_REGISTRY)


def list_explainers() -> list[ExplainerInfo]:
    return [_REGISTRY[name].info() for name in explainer_names()]


def accepted_settings(name: str) -> set[str]:
    """The constructor settings a registered explainer takes."""
    return init_parameters(_REGISTRY[name])


def pretrained_folder(name: str) -> Path:
    """The folder of a shipped ExpNet, by its name."""
    return Path(str(resources.files("expnet") / "pretrained" / PRETRAINED[name]))


def get_explainer(name_or_dir: str | Path, **settings) -> Explainer:
    """An explainer by registered name, a shipped ExpNet by name, or a trained ExpNet from its
    folder, with constructor ``settings``; a setting the explainer does not have, or a value out
    of its range, is an error."""
    from expnet.explainers.learned import LOAD_SETTINGS, ExpNetExplainer, is_expnet_folder

    name = str(name_or_dir)
    if (name in _REGISTRY or name in PRETRAINED) and is_expnet_folder(Path(name)):
        # Which one the user means cannot be known, and the wrong one gives other scores silently.
        raise ExpnetError(
            f"{name!r} is both {'a shipped ExpNet' if name in PRETRAINED else 'a registered explainer'} and an ExpNet "
            f"folder here; write ./{name} for the folder, or rename it"
        )
    explainer: Explainer
    if name in _REGISTRY:
        cls = _REGISTRY[name]
        _check_settings(name, settings, init_parameters(cls))
        explainer = cls(**settings)
    else:
        folder = _expnet_folder(name)
        _check_settings(name, settings, LOAD_SETTINGS)
        explainer = ExpNetExplainer.from_pretrained(folder, **settings)
    explainer.validate_settings()  # a value out of range: refused now, not after a model loads
    return explainer


def _expnet_folder(name: str) -> Path:
    """The folder of a shipped ExpNet or of one named by its path; refused when it is neither."""
    path = pretrained_folder(name) if name in PRETRAINED else Path(name)
    if path.is_dir():
        return path
    raise ExpnetError(
        f"unknown explainer {name!r}: give an ExpNet folder, a shipped ExpNet ({', '.join(PRETRAINED)}) or one of "
        f"{', '.join(explainer_names())} (see 'expnet explainers')"
    )


def _check_settings(name: str, settings: dict, accepted) -> None:
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ExpnetError(f"explainer {name!r} has no setting {unknown[0]!r}; its settings: {', '.join(sorted(accepted))}")


def setting_defaults(name_or_dir: str | Path) -> dict[str, object]:
    """The settings an explainer (a registered name, a shipped ExpNet or an ExpNet folder) takes,
    each with its default: how a setting given as text is read (``inspect.Parameter.empty``: none)."""
    from expnet.explainers.learned import LOAD_SETTINGS, ExpNetExplainer

    name = str(name_or_dir)
    if name in _REGISTRY:
        return _init_defaults(_REGISTRY[name])
    _expnet_folder(name)  # neither: refused as get_explainer refuses it
    return {k: v for k, v in _init_defaults(ExpNetExplainer).items() if k in LOAD_SETTINGS}


def init_parameters(cls: type) -> set[str]:
    """Every constructor parameter of ``cls`` and its bases (the settings it accepts)."""
    return set(_init_defaults(cls))


def _init_defaults(cls: type) -> dict[str, object]:
    """Every constructor parameter of ``cls`` and its bases, with its default (a subclass's first)."""
    defaults: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None:
            parameters = inspect.signature(init).parameters.items()
            defaults |= {k: p.default for k, p in parameters if k not in ("self", "args", "kwargs")}
    return defaults

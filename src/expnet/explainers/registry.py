"""The explainer registry, in the manner of inseq: names -> classes, and folders -> ExpNet."""

from __future__ import annotations

from pathlib import Path

from expnet.errors import ExpnetError
from expnet.explainers.base import Explainer, ExplainerInfo

_REGISTRY: dict[str, type[Explainer]] = {}


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


def get_explainer(name_or_dir: str | Path, **settings) -> Explainer:
    """An explainer by registered name, or a trained ExpNet from its folder."""
    name = str(name_or_dir)
    if name in _REGISTRY:
        cls = _REGISTRY[name]
        accepted = {k: v for k, v in settings.items() if k in _init_parameters(cls)}
        return cls(**accepted)
    path = Path(name)
    if path.is_dir():
        from expnet.explainers.learned import ExpNetExplainer

        return ExpNetExplainer.from_pretrained(path)
    raise ExpnetError(
        f"unknown explainer {name!r}: give an ExpNet folder or one of {', '.join(explainer_names())} "
        "(see 'expnet explainers')"
    )


def _init_parameters(cls: type) -> set[str]:
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= set(inspect.signature(init).parameters) - {"self", "args", "kwargs"}
    return names

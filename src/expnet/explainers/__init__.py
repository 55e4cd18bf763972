"""Every explainer behind one interface. Importing this package registers them all.

Each module registers its explainers with ``@register``; add a new module to the import list.
"""

from expnet.explainers import (  # noqa: F401  (registration)
    attention,
    attention_gradient,
    attention_shapley,
    contributions,
    gradient,
    perturbation,
    random_baseline,
    relevance,
)
from expnet.explainers.base import BatchAttribution, Explainer, ExplainerInfo, Explanation
from expnet.explainers.learned import ExpNetExplainer
from expnet.explainers.registry import explainer_names, get_explainer, list_explainers, register

__all__ = [
    "BatchAttribution",
    "ExpNetExplainer",
    "Explainer",
    "ExplainerInfo",
    "Explanation",
    "explainer_names",
    "get_explainer",
    "list_explainers",
    "register",
]

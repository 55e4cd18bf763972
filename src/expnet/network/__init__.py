"""ExpNet: the learned map from attention features to word importance."""

from expnet.network.features import FeatureSpec, word_features
from expnet.network.model import ExpNetModel
from expnet.network.training import ExpNetSettings

__all__ = ["ExpNetModel", "ExpNetSettings", "FeatureSpec", "word_features"]

"""Loading and fine-tuning Hugging Face sequence classifiers."""

from expnet.models.classifier import Classifier, default_backbone, pick_device

__all__ = ["Classifier", "default_backbone", "pick_device"]

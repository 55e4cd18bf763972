"""Loading classifiers: length limits per architecture."""

import json

from architectures import build_roberta
from expnet.explainers import get_explainer
from expnet.models.classifier import Classifier


def test_roberta_limit_leaves_room_for_its_position_offset(tmp_path):
    folder = build_roberta(tmp_path / "roberta")
    # Forget the tokenizer's own limit, as many saved tokenizers do.
    config_path = tmp_path / "roberta" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("model_max_length", None)
    config_path.write_text(json.dumps(config))
    classifier = Classifier.load(folder)
    assert classifier.max_length == classifier.config.max_position_embeddings - 2
    long_text = " ".join(["the film was good"] * 40)
    (explanation,) = get_explainer("raw_attention").explain(classifier, [long_text])
    assert explanation.truncated and explanation.scored[0]

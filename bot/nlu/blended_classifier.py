"""CareLoop's intent classifier: DIET's ranking blended with a logistic regression's.

Placed right after DIETClassifier in config.yml. DIET alone is often fully confident when it is
wrong on a phrasing it has not seen ("take care" → affirm 1.0); a logistic regression over the
same sparse features makes different mistakes and is modest about them. Each intent's blended
confidence is `diet_weight` × DIET's + (1 − `diet_weight`) × the regression's (`bot.nlu.blend`).

Judged on 80/20 splits of the training data (never on the held-out set; see the README's NLU
section), the blend scored higher than either classifier alone, and more of its remaining
mistakes fall under the fallback threshold, where the bot asks instead of guessing.

Without a DIETClassifier before it (or one with `intent_classification: false`), the regression
alone decides. Its options `C`, `class_weight` and `normalize` (each featurizer's sentence vector
scaled to unit length) let it carry the intents alone at a fraction of DIET's training time; see
docs/nlu-pipeline.md for what each setting measured.

Each parse also reports each classifier's own top intent as `intent_votes`, so a surprising
reading can be explained. This module runs in the Rasa environment.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import csr_matrix, hstack, vstack
from sklearn.preprocessing import normalize

from bot.nlu.blend import blend

VOTES = "intent_votes"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class BlendedIntentClassifier(LogisticRegressionClassifier):
    """A logistic regression whose prediction is blended with DIET's, which ran just before it."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **LogisticRegressionClassifier.get_default_config(),
            "max_iter": 500,
            "diet_weight": 0.3,
            # The regression's inverse regularisation strength and class weights (Rasa fixes 1.0 and
            # "balanced"); `normalize` scales each featurizer's sentence vector to unit length, so
            # long messages and the many character n-grams do not drown the words.
            "C": 1.0,
            "class_weight": "balanced",
            "normalize": False,
        }

    def __init__(self, config: dict[str, Any], *args: Any) -> None:
        super().__init__(config, *args)
        self.clf.set_params(C=self.config["C"], class_weight=self.config["class_weight"])

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        weight = config.get("diet_weight", 0.3)
        if not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise ValueError(f"BlendedIntentClassifier: diet_weight must be between 0 and 1, not {weight!r}")
        strength = config.get("C", 1.0)
        if not isinstance(strength, (int, float)) or strength <= 0:
            raise ValueError(f"BlendedIntentClassifier: C must be a positive number, not {strength!r}")

    def _create_X(self, messages: list[Message]) -> csr_matrix:
        """Each message's sparse sentence features, one unit-length block per featurizer if asked."""
        if not self.config["normalize"]:
            return super()._create_X(messages)
        blocks: dict[str, list[csr_matrix]] = {}
        for message in messages:
            for feature in message.features:
                sentence = feature.type == FEATURE_TYPE_SENTENCE and feature.is_sparse()
                if feature.attribute == TEXT and sentence:
                    blocks.setdefault(str(feature.origin), []).append(csr_matrix(feature.features))
        if any(len(rows) != len(messages) for rows in blocks.values()):
            raise ValueError("BlendedIntentClassifier: some messages lack a featurizer's sentence features")
        return hstack([normalize(vstack(blocks[origin]).astype(float)) for origin in sorted(blocks)]).tocsr()

    def process(self, messages: list[Message]) -> list[Message]:
        """Replace DIET's intent and ranking on each message by the blend of both classifiers."""
        readable = [m for m in messages if (m.get(TEXT) or "").strip()]
        if not readable:
            return messages
        probabilities = self.clf.predict_proba(self._create_X(readable))
        for message, row in zip(readable, probabilities, strict=True):
            regression = sorted(
                (
                    {"name": str(name), "confidence": float(p)}
                    for name, p in zip(self.clf.classes_, row, strict=True)
                ),
                key=lambda entry: -entry["confidence"],
            )
            # Without DIET before this component, the regression alone decides.
            diet = message.get(INTENT_RANKING_KEY) or regression
            ranking = blend(diet, regression, self.config["diet_weight"])
            length = self.config["ranking_length"]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking[:length] if length > 0 else ranking, add_to_output=True)
            votes = {"logistic_regression": regression[0]}
            if diet is not regression:
                votes["diet"] = dict(diet[0])
            message.set(VOTES, votes, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training examples keep their own intents (the parent class would overwrite them)."""
        return training_data

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> BlendedIntentClassifier:
        """Load the trained regression; fail loudly rather than run untrained (the parent is silent)."""
        import skops.io as sio

        with model_storage.read_from(resource) as model_dir:
            path = model_dir / f"{resource.name}.skops"
            untrusted = sio.get_untrusted_types(file=path)
            if untrusted:
                raise ValueError(f"{path} holds types that are not trusted: {untrusted}")
            component = cls(config, execution_context.node_name, model_storage, resource)
            component.clf = sio.load(path, trusted=untrusted)
        return component

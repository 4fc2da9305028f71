"""Analyse a customer's free text: products and orders mentioned, category and anger cues, competitors.

spaCy's blank English pipeline with an entity ruler whose patterns come from the CRM catalogue, so
no model download is needed and new products are recognised as soon as they are in the catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import spacy
from spacy.language import Language

from bot.crm.models import ComplaintCategory

ORDER_RE = re.compile(r"\b(?:CL)[-\s]?(\d{6})\b", re.IGNORECASE)
COMPETITORS = (
    "BrewBox",
    "Roastery Direct",
    "BeanHub",
    "Kaffeehaus Online",
    "Amazon",
    "Nespresso",
    "Starbucks",
)
PRODUCT_ALIASES = {
    "grinder": "grinder",
    "burr grinder": "Stepless burr grinder",
    "espresso machine": "Aurora espresso machine",
    "coffee machine": "coffee machine",
    "capsule machine": "Nova capsule machine",
    "kettle": "Gooseneck kettle",
    "scale": "Brewing scale",
    "capsules": "Compostable capsules, 50 pack",
    "beans": "beans",
    "frother": "Milk frother",
    "mug": "mug",
    "travel mug": "Insulated travel mug",
    "filters": "Paper filters, 100 pack",
    "gift card": "gift card",
}
CATEGORY_CUES: dict[ComplaintCategory, tuple[str, ...]] = {
    ComplaintCategory.DELIVERY: (
        "late",
        "delivery",
        "delivered",
        "parcel",
        "package",
        "courier",
        "shipping",
        "arrive",
        "arrived",
        "never came",
        "lost",
        "tracking",
        "dhl",
        "ups",
        "dpd",
        "wrong address",
        "box was crushed",
        "missing item",
    ),
    ComplaintCategory.BILLING: (
        "charged",
        "charge",
        "invoice",
        "bill",
        "billing",
        "payment",
        "paid twice",
        "double",
        "overcharged",
        "money taken",
        "debit",
        "card",
        "price was wrong",
    ),
    ComplaintCategory.PRODUCT_QUALITY: (
        "broken",
        "defective",
        "faulty",
        "stale",
        "taste",
        "tastes",
        "leak",
        "leaking",
        "noise",
        "noisy",
        "stopped working",
        "cracked",
        "damaged",
        "doesn't work",
        "does not work",
        "quality",
        "burnt",
        "mould",
    ),
    ComplaintCategory.SERVICE: (
        "rude",
        "no answer",
        "ignored",
        "support",
        "nobody",
        "waited",
        "waiting",
        "unhelpful",
        "customer service",
        "hung up",
        "no reply",
        "agent",
    ),
    ComplaintCategory.TECHNICAL: (
        "app",
        "website",
        "site",
        "login",
        "log in",
        "password",
        "crash",
        "crashes",
        "error",
        "checkout",
        "bug",
        "logs me out",
        "page",
    ),
}
# Words that say why someone leaves, for when the NLU found the intent but not the entity.
LEAVE_REASON_CUES: dict[str, tuple[str, ...]] = {
    "price": (
        "expensive",
        "price",
        "pricey",
        "cost",
        "costs",
        "afford",
        "money",
        "cheaper",
        "too much",
        "budget",
    ),
    "competitor": ("competitor", "another shop", "other shop", "elsewhere", "switching to", "better deal"),
    "quality": ("quality", "taste", "tastes", "stale", "bland", "bitter", "broken", "defective"),
    "service": ("service", "support", "rude", "ignored", "no answer", "slow delivery", "late again"),
    "no_longer_needed": (
        "don't need",
        "do not need",
        "no longer",
        "not drinking",
        "stopped drinking",
        "don't drink",
        "quit coffee",
        "too many beans",
        "don't use",
    ),
    "moving": ("moving", "move abroad", "relocating", "relocate", "new country", "emigrating"),
}
ANGER_WORDS = (
    "furious",
    "ridiculous",
    "unacceptable",
    "disgusting",
    "worst",
    "scam",
    "fraud",
    "never again",
    "lawyer",
    "angry",
    "outrageous",
    "pathetic",
    "useless",
    "joke",
    "wtf",
    "fed up",
    "sick of",
    "terrible",
    "awful",
    "horrible",
    "disgrace",
    "livid",
    "shocking",
    "rip off",
    "ripoff",
    "incompetent",
)
REPEAT_WORDS = (
    "again",
    "second time",
    "third time",
    "once more",
    "still not",
    "still broken",
    "keeps",
    "every time",
)


@dataclass(frozen=True)
class Analysis:
    products: list[str] = field(default_factory=list)
    order_numbers: list[str] = field(default_factory=list)
    category: ComplaintCategory | None = None
    anger: int = 0  # 0 calm, 1 upset, 2+ angry
    repeat: bool = False
    competitor: str | None = None
    leave_reason: str | None = None

    @property
    def angry(self) -> bool:
        return self.anger >= 2


@lru_cache(maxsize=4)
def _pipeline(product_names: tuple[str, ...]) -> Language:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    patterns: list[dict[str, object]] = [
        {"label": "PRODUCT", "pattern": name, "id": name} for name in product_names
    ]
    patterns += [
        {"label": "PRODUCT", "pattern": alias, "id": target} for alias, target in PRODUCT_ALIASES.items()
    ]
    patterns += [{"label": "COMPETITOR", "pattern": name, "id": name} for name in COMPETITORS]
    ruler.add_patterns(patterns)  # type: ignore[attr-defined]
    return nlp


def analyse(text: str, product_names: Iterable[str] = ()) -> Analysis:
    """Everything the bot can read from one message besides its intent."""
    text = text or ""
    doc = _pipeline(tuple(sorted(set(product_names))))(text[:4000])
    products = list(dict.fromkeys(ent.ent_id_ or ent.text for ent in doc.ents if ent.label_ == "PRODUCT"))
    competitors = [ent.ent_id_ or ent.text for ent in doc.ents if ent.label_ == "COMPETITOR"]
    lowered = text.lower()
    return Analysis(
        products=products,
        order_numbers=list(dict.fromkeys(f"CL-{digits}" for digits in ORDER_RE.findall(text))),
        category=_category(lowered, mentions_product=bool(products)),
        anger=_anger(text, lowered),
        repeat=any(word in lowered for word in REPEAT_WORDS),
        competitor=competitors[0] if competitors else None,
        leave_reason=_leave_reason(lowered, has_competitor=bool(competitors)),
    )


def _leave_reason(lowered: str, *, has_competitor: bool) -> str | None:
    if has_competitor:
        return "competitor"
    for reason, cues in LEAVE_REASON_CUES.items():
        if any(re.search(rf"(?<!\w){re.escape(cue)}(?!\w)", lowered) for cue in cues):
            return reason
    return None


def _category(lowered: str, *, mentions_product: bool) -> ComplaintCategory | None:
    scores = {
        category: sum(1 for cue in cues if re.search(rf"\b{re.escape(cue)}\b", lowered))
        for category, cues in CATEGORY_CUES.items()
    }
    if mentions_product and scores[ComplaintCategory.PRODUCT_QUALITY]:
        scores[ComplaintCategory.PRODUCT_QUALITY] += 1  # "the grinder arrived broken" is about the grinder
    best = max(scores, key=lambda c: scores[c])
    return best if scores[best] > 0 else None


def _anger(text: str, lowered: str) -> int:
    words = re.findall(r"[A-Za-z]{3,}", text)
    shouting = sum(1 for w in words if w.isupper()) >= max(2, len(words) // 3)
    exclamations = text.count("!") >= 2
    anger_words = sum(1 for word in ANGER_WORDS if word in lowered)
    return min(3, 2 * (anger_words > 0) + shouting + exclamations + (anger_words > 1))

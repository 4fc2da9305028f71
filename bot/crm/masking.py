"""Mask a customer's personal data in a message before it becomes training data.

Each kind of personal data is replaced by one fixed, plainly fake value of the same shape, so
that the example still reads like what customers write (`my email is anna@example.com`) and the
model learns the sentence, not the person. The rules, in order; where two overlap the earlier wins:

- what the CRM holds about this customer (email, phone, order numbers, parcel tracking codes),
  in any case and, for a phone, however spaced: as below;
- links (`http(s)://…`, `www.…`) → `https://example.com`;
- email addresses → `anna@example.com`;
- IBANs (two letters, two digits, 11–30 letters and digits) → `DE00 0000 0000 0000 0000 00`;
- card-like numbers (13–19 digits, spaces or dashes between) → `4111 1111 1111 1111`;
- order numbers as data/nlu/orders.yml knows them (`CL-104233`, `cl104233`) → `CL-100000`;
- phone numbers (8 or more digits with `+ ( ) . - /` or spaces) → `+44 20 7946 0000`;
- UK postcodes (`SW1A 1AA`) → `AB1 2CD`;
- street addresses (a number and up to four words ending in Street, Rd, Avenue, Lane, …; or a
  word ending in -straße, -weg, -platz, … and a number) → `1 Example Street`;
- handles (`@someone`) → `@anna`;
- codes of 8 or more letters and digits mixed (tracking, account, voucher codes) → `X0000000`;
- any other run of 5 or more digits (postcodes, account numbers) → `12345`;
- the customer's names from the CRM (first and last name, the channel's display name), as whole
  words in any case; a name that is also an everyday word (Will, May, Grace) only when
  capitalised → `Anna`, `Smith`.

An email, phone number or order number becomes an annotated entity (`[anna@example.com](email)`)
when the domain has that entity, as the hand-written examples are. Names of other people, and
addresses in shapes the rules do not know, are not found: the export is a reviewable change, and
its reviewer reads every line before it is merged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

EMAIL, PHONE, ORDER, CODE = "anna@example.com", "+44 20 7946 0000", "CL-100000", "X0000000"
PLACEHOLDER_ENTITY = {EMAIL: "email", PHONE: "phone", ORDER: "order_id"}
FIRST_NAME, LAST_NAME = "Anna", "Smith"
# First names that are everyday words too: masked only when written with a capital.
EVERYDAY_WORDS = frozenset(
    "will may mark bill rose grace hope joy faith summer april june august art frank sue pat rob guy chase "
    "dean drew jack ray max sandy rusty bob sunny amber ruby jade iris holly ivy dawn eve hunter page "
    "sky river storm autumn win lucky sam".split()
)
STREET_SUFFIX = (
    r"street|st\.?|road|rd\.?|avenue|ave\.?|lane|ln\.?|drive|dr\.?|way|boulevard|blvd\.?|court|ct\.?|"
    r"place|pl\.?|close|terrace|square|sq\.?|crescent|gardens|row|hill|parade|walk|mews"
)
RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I), "https://example.com"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), EMAIL),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), "DE00 0000 0000 0000 0000 00"),
    (re.compile(r"(?<![\d+])\d(?:[ -]?\d){12,18}(?!\d)"), "4111 1111 1111 1111"),
    (re.compile(r"\b[Cc][Ll][- ]?\d{6}\b"), ORDER),
    (re.compile(r"(?<![\w+])\+?\(?\d(?:[ ()./-]{0,2}\d){7,14}(?!\w)"), PHONE),
    (re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b", re.I), "AB1 2CD"),
    (
        re.compile(rf"\b\d{{1,5}}[a-z]?,? +(?:[A-Za-z][\w'-]* +){{0,3}}(?:{STREET_SUFFIX})(?!\w)", re.I),
        "1 Example Street",
    ),
    (
        re.compile(
            r"\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|platz|allee|gasse|damm) *\d{1,4}[a-z]?\b"
        ),
        "1 Example Street",
    ),
    (re.compile(r"(?<![\w.])@[A-Za-z0-9_]{3,}"), "@anna"),
    (re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{8,}\b"), CODE),
    (re.compile(r"\d{5,}"), "12345"),
)
_MARKUP = str.maketrans({"[": "(", "]": ")", "{": "(", "}": ")"})
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Known:
    """What the CRM holds about the customer who wrote the message."""

    first_names: tuple[str, ...] = ()
    last_names: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    order_numbers: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()  # parcel tracking codes


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    value: str


def mask(text: str, known: Known = Known(), entities: Iterable[str] = ()) -> str:
    """`text` on one line with every personal datum replaced; placeholders of an entity in
    `entities` are annotated the way Rasa's NLU data marks entities."""
    spaced = _SPACE.sub(" ", text.translate(_MARKUP))
    flat = "".join(ch for ch in spaced if ch.isprintable()).strip()
    spans: list[_Span] = []
    for pattern, value in _known_patterns(known):
        _take(spans, pattern, flat, value)
    for pattern, value in RULES:
        _take(spans, pattern, flat, value)
    for pattern, value in _name_patterns(known):
        _take(spans, pattern, flat, value)
    return _rebuild(flat, spans, set(entities))


def _known_patterns(known: Known) -> list[tuple[re.Pattern[str], str]]:
    """The customer's own contact data and order numbers, as stored."""
    found: list[tuple[re.Pattern[str], str]] = []
    pairs = ((known.emails, EMAIL), (known.order_numbers, ORDER), (known.codes, CODE))
    for values, placeholder in pairs:
        found += [(re.compile(re.escape(v), re.I), placeholder) for v in values if len(v) >= 4]
    for phone in known.phones:
        digits = re.sub(r"\D", "", phone)
        if len(digits) >= 6:  # the same digits however they are spaced
            found.append((re.compile(r"\+?" + r"[ ()./-]{0,2}".join(digits)), PHONE))
    return found


def _name_patterns(known: Known) -> list[tuple[re.Pattern[str], str]]:
    found: list[tuple[re.Pattern[str], str]] = []
    for names, placeholder in ((known.first_names, FIRST_NAME), (known.last_names, LAST_NAME)):
        for name in {n.strip() for n in names if len(n.strip()) >= 2}:
            word = rf"(?<!\w){re.escape(name)}(?!\w)"
            everyday = name.lower() in EVERYDAY_WORDS
            pattern = re.compile(
                rf"(?<!\w){re.escape(name[:1].upper() + name[1:])}(?!\w)" if everyday else word
            )
            found.append((pattern if everyday else re.compile(word, re.I), placeholder))
    return found


def _take(spans: list[_Span], pattern: re.Pattern[str], text: str, value: str) -> None:
    """Add the pattern's matches that overlap no span taken by an earlier rule."""
    for match in pattern.finditer(text):
        start, end = match.span()
        if start == end or any(s.start < end and start < s.end for s in spans):
            continue
        spans.append(_Span(start, end, value))


def _rebuild(text: str, spans: list[_Span], entities: set[str]) -> str:
    parts, position = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        parts.append(text[position : span.start])
        entity = PLACEHOLDER_ENTITY.get(span.value)
        parts.append(f"[{span.value}]({entity})" if entity in entities else span.value)
        position = span.end
    parts.append(text[position:])
    return "".join(parts)


def known_from(
    *,
    first_names: Iterable[str | None],
    last_names: Iterable[str | None],
    display_names: Iterable[str | None],
    emails: Iterable[str | None],
    phones: Iterable[str | None],
    order_numbers: Iterable[str | None],
    codes: Iterable[str | None] = (),
) -> Known:
    """A Known from CRM values (None skipped); a channel display name counts as first and last names."""
    display = [part for name in display_names if name for part in name.split()]
    return Known(
        first_names=_present([*first_names, *display[:1]]),
        last_names=_present([*last_names, *display[1:]]),
        emails=_present(emails),
        phones=_present(phones),
        order_numbers=_present(order_numbers),
        codes=_present(codes),
    )


def _present(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(v for v in values if v)

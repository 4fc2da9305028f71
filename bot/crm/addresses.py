"""Postal addresses and names as a shop accepts them: read from one message, checked, stored, shown.

An address is street line(s), a postal code that fits its country, a city and a country the shop
knows. It is read from free text ("14 Park Lane, Leeds LS1 4DY, UK"); what it lacks is named by an
`AddressProblem`, which the bot turns into a question that says exactly what to send. Markup,
control and invisible characters, and over-long text are refused rather than cleaned up: what is
stored is what the customer will see on their parcels.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import webhooks
from bot.crm.models import Customer, Order, OrderStatus
from bot.crm.models.enums import CountryCode
from bot.crm.queries import record_audit

MAX_TEXT = 300  # a whole address in one message
MAX_LINE = 100  # one street line (Customer.address_line1/2)
MAX_CITY = 80
MAX_NAME_PART = 80  # Customer.first_name / last_name
# Characters an address or name may hold besides letters, marks, digits and spaces.
ADDRESS_PUNCTUATION = frozenset(",.-'/#&()°ºª\n’")
NAME_PUNCTUATION = frozenset("-'.’")
FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}  # ！..～ -> !..~
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "poiuytrewq", "lkjhgfdsa", "mnbvcxz")
TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "herr", "frau", "mme", "mlle", "m"})


class AddressProblem(str, enum.Enum):
    """What an address lacks; the value is the `contact_hint` slot's."""

    NO_STREET = "no_street"
    NO_POSTCODE = "no_postcode"
    BAD_POSTCODE = "bad_postcode"
    NO_CITY = "no_city"
    NO_COUNTRY = "no_country"
    TOO_LONG = "too_long"
    ODD_CHARACTERS = "odd_characters"


class NameProblem(str, enum.Enum):
    """What a name lacks; the value is the `contact_hint` slot's."""

    FULL_NAME = "full_name"
    TOO_LONG = "too_long"
    ODD_CHARACTERS = "odd_characters"


class AddressRefused(ValueError):
    def __init__(self, problem: AddressProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class NameRefused(ValueError):
    def __init__(self, problem: NameProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str
    postcode: str  # the pattern a postal code there matches, case-insensitive
    aliases: tuple[str, ...] = ()


COUNTRIES = (
    Country(
        "GB",
        "United Kingdom",
        r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}",
        ("uk", "gb", "great britain", "britain", "england", "scotland", "wales", "northern ireland"),
    ),
    Country("IE", "Ireland", r"[A-Z]\d[\dW] ?[A-Z\d]{4}", ("eire", "éire", "republic of ireland")),
    Country("DE", "Germany", r"\d{5}", ("deutschland", "de")),
    Country("AT", "Austria", r"\d{4}", ("österreich", "oesterreich", "at")),
    Country("CH", "Switzerland", r"\d{4}", ("schweiz", "suisse", "svizzera", "ch")),
    Country("FR", "France", r"\d{5}", ("fr",)),
    Country("BE", "Belgium", r"\d{4}", ("belgique", "belgië", "belgie", "be")),
    Country("NL", "Netherlands", r"\d{4} ?[A-Z]{2}", ("the netherlands", "holland", "nederland", "nl")),
    Country("LU", "Luxembourg", r"(?:L-)?\d{4}", ("lu",)),
    Country("IT", "Italy", r"\d{5}", ("italia", "it")),
    Country("ES", "Spain", r"\d{5}", ("españa", "espana", "es")),
    Country("PT", "Portugal", r"\d{4}-\d{3}", ("pt",)),
    Country("DK", "Denmark", r"\d{4}", ("danmark", "dk")),
    Country("SE", "Sweden", r"\d{3} ?\d{2}", ("sverige", "se")),
    Country("NO", "Norway", r"\d{4}", ("norge", "no")),
    Country("FI", "Finland", r"\d{5}", ("suomi", "fi")),
    Country("PL", "Poland", r"\d{2}-\d{3}", ("polska", "pl")),
    Country("CZ", "Czechia", r"\d{3} ?\d{2}", ("czech republic", "česko", "cesko", "cz")),
    Country(
        "US",
        "United States",
        r"\d{5}(?:-\d{4})?",
        ("usa", "us", "u s a", "u s", "united states of america", "america"),
    ),
    Country("CA", "Canada", r"[A-Z]\d[A-Z] ?\d[A-Z]\d", ("ca",)),
    Country("AU", "Australia", r"\d{4}", ("au",)),
    Country("JP", "Japan", r"\d{3}-\d{4}", ("jp", "nippon")),
)
BY_CODE = {country.code: country for country in COUNTRIES}
CITY_FIRST = frozenset({"GB", "IE", "US", "CA", "AU"})  # "Leeds LS1 4DY", not "LS1 4DY Leeds"
# Postal codes that name their country without it being said.
DISTINCTIVE = ("GB", "NL", "CA", "PL", "PT", "IE")
LEAD_IN = re.compile(
    r"^(?:(?:please|pls|can you|could you|kindly)\s+)?"
    r"(?:(?:update|change|set|correct)\s+(?:my\s+|the\s+)?(?:\w+\s+)?(?:address|adress)\s+to"
    r"|(?:my|the|our)?\s*(?:new|correct|right|current)?\s*(?:\w+\s+)?(?:address|adress)(?:\s+is|\s*:|\s+-)"
    r"|(?:the\s+)?new\s+one\s+is|it'?s\s+now|it'?s|it\s+is|now\s+it'?s"
    r"|send\s+(?:it|them|everything|my\s+\w+)\s+to|deliver\s+(?:it\s+|them\s+)?to"
    r"|(?:i\s+)?(?:moved|live|now\s+live)\s+(?:to|at|in)"
    r")(?![\w'])\s*:?\s*",
    re.IGNORECASE,
)
TRAILER = re.compile(r"[\s,.!]*\b(?:please|pls|thanks|thank you|thx|ty|from now on)\b[\s.!]*$", re.IGNORECASE)


@dataclass(frozen=True)
class PostalAddress:
    line1: str
    line2: str | None
    postal_code: str
    city: str
    country: str  # ISO alpha-2

    def one_line(self) -> str:
        """The address as the bot says it back: lines, postal code and city, country."""
        lines = ", ".join(line for line in (self.line1, self.line2) if line)
        place = (
            f"{self.city} {self.postal_code}"
            if self.country in CITY_FIRST
            else f"{self.postal_code} {self.city}"
        )
        return f"{lines}, {place}, {BY_CODE[self.country].name}"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "line1": self.line1,
            "line2": self.line2,
            "postal_code": self.postal_code,
            "city": self.city,
            "country": self.country,
        }


def has_odd_character(text: str, allowed: frozenset[str]) -> bool:
    """Whether the text holds markup, control, invisible or other characters no address or name has."""
    for ch in text:
        if ch.isalnum() or ch == " " or ch in allowed:
            continue
        if unicodedata.category(ch) not in ("Mn", "Mc"):  # combining accents are letters' parts
            return True
    return False


def normalised(text: str) -> str:
    """NFC text with full-width letters and digits made ASCII and runs of blanks single spaces."""
    text = unicodedata.normalize("NFC", text or "").translate(FULL_WIDTH)
    text = "\n".join(re.sub(r"[ \t\u00a0\u3000]+", " ", line).strip() for line in text.splitlines())
    return text.strip()


def country_named(words: str) -> Country | None:
    """The country a name or alias means ("UK", "Deutschland", "the Netherlands"), if known."""
    key = re.sub(r"[.\s]+", " ", words.replace(".", " ")).strip().casefold()
    key = key.removeprefix("the ") if key not in ("the netherlands",) else key
    for country in COUNTRIES:
        if key == country.name.casefold() or key in country.aliases or key == country.code.casefold():
            return country
    return None


def _take_country(parts: list[str]) -> tuple[list[str], Country | None]:
    """Remove the country from the end of the address: a part of its own or the last words."""
    last = parts[-1]
    country = country_named(last)
    if country is not None and len(parts) > 1:
        return parts[:-1], country
    words = last.split(" ")
    for size in (4, 3, 2, 1):
        if len(words) > size:
            country = country_named(" ".join(words[-size:]))
            if country is not None:
                return [*parts[:-1], " ".join(words[:-size]).rstrip(" ,")], country
    return parts, None


def _find_postcode(parts: list[str], pattern: str) -> tuple[int, re.Match[str]] | None:
    """The last part (searching from the end) that holds a postal code of this pattern."""
    compiled = re.compile(rf"(?<![\w-])({pattern})(?![\w-])", re.IGNORECASE)
    for index in range(len(parts) - 1, -1, -1):
        matches = list(compiled.finditer(parts[index]))
        found = matches[-1] if matches else None  # the last: a house number comes before the code
        if found is not None and (index > 0 or found.start() > 0 or len(parts) == 1):
            return index, found
    return None


def _postcode_of(text: str) -> str:
    return re.sub(r"\s+", " ", text.upper()).strip()


def _has_word(text: str) -> bool:
    """Whether the text holds a word: two or more letters (any script); in Latin letters, with a
    vowel and not a run along one keyboard row ("asdf", "qwerty")."""
    for token in re.findall(r"[^\W\d_]{2,}", text):
        plain = token.lower()
        if not plain.isascii():
            return True
        mash = len(plain) >= 4 and (len(set(plain)) == 1 or any(plain in row for row in KEYBOARD_ROWS))
        if any(vowel in plain for vowel in "aeiouy") and not mash:
            return True
    return False


def parse_address(text: str) -> PostalAddress:
    """The postal address in `text`, or AddressRefused naming what it lacks."""
    if len(text or "") > MAX_TEXT * 2:
        raise AddressRefused(AddressProblem.TOO_LONG)
    text = normalised(text)
    if len(text) > MAX_TEXT:
        raise AddressRefused(AddressProblem.TOO_LONG)
    text = TRAILER.sub("", LEAD_IN.sub("", text, count=1)).strip(" ,.\n")
    if has_odd_character(text, ADDRESS_PUNCTUATION):
        raise AddressRefused(AddressProblem.ODD_CHARACTERS)
    parts = [part.strip(" .") for part in re.split(r"[,\n]", text) if part.strip(" .")]
    if not parts or not any(re.search(r"\d", part) for part in parts):
        raise AddressRefused(AddressProblem.NO_POSTCODE if parts else AddressProblem.NO_STREET)
    if any(len(part) > MAX_LINE for part in parts):
        raise AddressRefused(AddressProblem.TOO_LONG)
    parts, country = _take_country(parts)
    parts = [part for part in parts if part]
    if country is None:
        country = _guess_country(parts)
    found = _find_postcode(parts, country.postcode)
    if found is None:
        raise AddressRefused(
            AddressProblem.BAD_POSTCODE if _looks_like_postcode(parts) else AddressProblem.NO_POSTCODE
        )
    index, match = found
    return _assemble(parts, index, match, country)


def _guess_country(parts: list[str]) -> Country:
    """The country a distinctive postal code names; else the address lacks its country."""
    for code in DISTINCTIVE:
        if _find_postcode(parts, BY_CODE[code].postcode) is not None:
            return BY_CODE[code]
    raise AddressRefused(AddressProblem.NO_COUNTRY)


def _looks_like_postcode(parts: list[str]) -> bool:
    """Whether a part after the street holds something code-like (digits) that did not fit."""
    return any(re.search(r"\d", part) for part in parts[1:]) or len(parts) == 1


def _assemble(parts: list[str], index: int, match: re.Match[str], country: Country) -> PostalAddress:
    """Street lines before the postal code's part; the city beside the postal code or after it."""
    holder = parts[index]
    before, after = holder[: match.start()].strip(" ,"), holder[match.end() :].strip(" ,")
    street = parts[:index]
    if after and _has_word(after):
        city = after
        if before:
            if street:  # "Leeds LS1 4DY" after a street: the words before the code are the city
                city = f"{before} {after}".strip() if not _has_word(before) else before
            else:
                street = [before]
    elif before and street and _has_word(before):
        city = before  # "Leeds LS1 4DY", "Springfield, OR 97477": the city precedes the code
        if re.fullmatch(r"[A-Z]{2}", before) and street:
            city = f"{street.pop()} {before}"  # a US/CA/AU state code belongs with the city
    elif index + 1 < len(parts) and _has_word(parts[index + 1]):
        city = parts[index + 1]
        if before:
            street.append(before)
    elif not before and len(street) >= 2 and _has_word(street[-1]):
        city = street.pop()  # "5 Marine Parade, Dún Laoghaire, A96 X2P4": the city's own part
    else:
        raise AddressRefused(AddressProblem.NO_CITY)
    street = [line for line in street if line]
    if not street or not _has_word(" ".join(street)):
        raise AddressRefused(AddressProblem.NO_STREET)
    if not _has_word(city) or len(city) > MAX_CITY or re.search(r"\d{3,}", city):
        raise AddressRefused(AddressProblem.NO_CITY)
    line1, line2 = street[0], ", ".join(street[1:]) or None
    if len(line1) > MAX_LINE or (line2 and len(line2) > MAX_LINE):
        raise AddressRefused(AddressProblem.TOO_LONG)
    return PostalAddress(line1, line2, _postcode_of(match.group(1)), city, country.code)


NAME_LEAD_IN = re.compile(
    r"^(?:(?:please|pls|kindly)\s+)?"
    r"(?:(?:my|the)\s+(?:new\s+|correct\s+|right\s+|full\s+|real\s+|legal\s+)*name\s*(?:is|should\s+be|:|-)"
    r"|name\s*:|(?:the\s+)?right\s+(?:one|name)\s+is|it\s+should\s+be|it'?s\s+now|it'?s|it\s+is"
    r"|change\s+(?:it|my\s+name)\s+to|make\s+it|put|use|call\s+me|i'?m|i\s+am)(?![\w'])\s*:?\s*",
    re.IGNORECASE,
)
NAME_TRAILER = re.compile(
    r"[\s,.!]*\b(?:please|pls|thanks|thank you|now|on\s+the\s+account|instead)\b[\s.!]*$", re.IGNORECASE
)


def parse_name(text: str) -> tuple[str, str]:
    """(first name, last name) from "my name is Anna Novak", or NameRefused naming what it lacks."""
    if len(text or "") > MAX_NAME_PART * 4:
        raise NameRefused(NameProblem.TOO_LONG)
    text = normalised(text).replace("\n", " ")
    text = NAME_TRAILER.sub("", NAME_LEAD_IN.sub("", text, count=1)).strip(" .")
    if has_odd_character(text, NAME_PUNCTUATION):
        raise NameRefused(NameProblem.ODD_CHARACTERS)
    if re.search(r"\d", text):
        raise NameRefused(NameProblem.ODD_CHARACTERS)
    words = [word for word in text.split(" ") if word]
    while words and words[0].casefold().rstrip(".") in TITLES and len(words) > 2:
        words = words[1:]
    if any(len(word) > MAX_NAME_PART for word in words):
        raise NameRefused(NameProblem.TOO_LONG)
    if len(words) < 2 or len(words) > 5 or not all(_name_word(word) for word in words):
        raise NameRefused(NameProblem.FULL_NAME)
    first, last = " ".join(words[:-1]), words[-1]
    if len(first) > MAX_NAME_PART or len(last) > MAX_NAME_PART:
        raise NameRefused(NameProblem.TOO_LONG)
    return first, last


def _name_word(word: str) -> bool:
    """A word of a name: letters (any script) with at most a few joining marks, not keyboard mash."""
    letters = [ch for ch in word if ch.isalpha()]
    if not letters or len(letters) > MAX_NAME_PART:
        return False
    plain = "".join(letters).lower()
    mash = len(set(plain)) == 1 or any(plain in row for row in KEYBOARD_ROWS)
    return not (plain.isascii() and len(plain) >= 4 and mash)


@dataclass(frozen=True)
class AddressChange:
    """What a new address meant: the old one, the orders it touches, and whether the shop was told."""

    old: PostalAddress | None
    pending: list[str]  # order numbers not shipped yet
    shipped: list[str]  # order numbers on their way to the old address
    told: bool  # a customer.updated webhook was queued for the shop


def address_of(customer: Customer) -> PostalAddress | None:
    """The customer's stored delivery address, if complete."""
    if not (customer.address_line1 and customer.postal_code and customer.city and customer.country):
        return None
    return PostalAddress(
        customer.address_line1,
        customer.address_line2,
        customer.postal_code,
        customer.city,
        customer.country.value,
    )


def is_shop_customer(*, session: Session, customer: Customer) -> bool:
    """Whether the customer is a shop account (the shop knows them, or they ordered), not a guest."""
    if customer.external_id is not None:
        return True
    return session.scalar(select(Order.id).where(Order.customer_id == customer.id).limit(1)) is not None


def orders_in_flight(*, session: Session, customer_id: int) -> tuple[list[str], list[str]]:
    """The numbers of the customer's orders not shipped yet, and of those shipped but not delivered."""
    rows = session.execute(
        select(Order.number, Order.status)
        .where(Order.customer_id == customer_id, Order.status.in_([OrderStatus.PLACED, OrderStatus.SHIPPED]))
        .order_by(Order.placed_at, Order.id)
    ).all()
    pending = [number for number, status in rows if status is OrderStatus.PLACED]
    return pending, [number for number, status in rows if status is OrderStatus.SHIPPED]


def change_address(
    *, session: Session, customer: Customer, address: PostalAddress, source: str, now: datetime
) -> AddressChange:
    """Store the new address, audit the old one, and tell the shop (with the orders it touches)."""
    old = address_of(customer)
    assign(customer, address, now=now)
    record_audit(
        session=session,
        actor="customer",
        action="address_changed",
        entity="customer",
        entity_id=customer.id,
        details={"source": source, "old": old.as_dict() if old else None},
    )
    pending, shipped = orders_in_flight(session=session, customer_id=customer.id)
    payload = {
        **webhooks.customer_ref(customer),
        "changed": ["address"],
        "address": address.as_dict(),
        "orders_not_shipped": pending,
        "orders_shipped": shipped,
        "source": source,
    }
    told = webhooks.emit(session, "customer.updated", payload, now=now) > 0
    return AddressChange(old, pending, shipped, told)


def change_name(
    *, session: Session, customer: Customer, first_name: str, last_name: str, source: str, now: datetime
) -> tuple[str, bool]:
    """Store the new name, audit the old one, tell the shop; return the old name and whether it was told."""
    old = {"first_name": customer.first_name, "last_name": customer.last_name}
    customer.first_name, customer.last_name = first_name, last_name
    record_audit(
        session=session,
        actor="customer",
        action="name_changed",
        entity="customer",
        entity_id=customer.id,
        details={"source": source, "old": old},
    )
    payload = {
        **webhooks.customer_ref(customer),
        "changed": ["name"],
        "first_name": first_name,
        "last_name": last_name,
        "source": source,
    }
    told = webhooks.emit(session, "customer.updated", payload, now=now) > 0
    return " ".join(part for part in old.values() if part) or "not set", told


# What each problem is called where no chat question can say it (the inbound API's 422).
PROBLEM_SAID = {
    AddressProblem.NO_STREET: "needs a street line in words, e.g. Hauptstraße 12",
    AddressProblem.NO_POSTCODE: "needs a postal code",
    AddressProblem.BAD_POSTCODE: "has a postal code that does not fit its country",
    AddressProblem.NO_CITY: "needs a city",
    AddressProblem.NO_COUNTRY: "needs a country the shop delivers to, as its ISO code: " + ", ".join(BY_CODE),
    AddressProblem.TOO_LONG: "is too long",
    AddressProblem.ODD_CHARACTERS: "contains characters no address has (markup, control or invisible)",
}


def check_parts(*, line1: str, line2: str | None, postal_code: str, city: str, country: str) -> PostalAddress:
    """An address given field by field (the inbound API), checked as one read from a message is."""
    known = BY_CODE.get(country.strip().upper())
    if known is None:
        raise AddressRefused(AddressProblem.NO_COUNTRY)
    parts = [normalised(part) for part in (line1, line2 or "", postal_code, city)]
    if any(has_odd_character(part, ADDRESS_PUNCTUATION - {"\n"}) for part in parts):
        raise AddressRefused(AddressProblem.ODD_CHARACTERS)
    line1, line2, postal_code, city = parts
    if not re.fullmatch(known.postcode, postal_code, re.IGNORECASE):
        raise AddressRefused(AddressProblem.BAD_POSTCODE)
    if not _has_word(line1):
        raise AddressRefused(AddressProblem.NO_STREET)
    if not _has_word(city):
        raise AddressRefused(AddressProblem.NO_CITY)
    return PostalAddress(line1, line2 or None, _postcode_of(postal_code), city, known.code)


def assign(customer: Customer, address: PostalAddress | None, *, now: datetime) -> bool:
    """Put the address on the customer (None clears it); whether anything changed."""
    if address_of(customer) == address:
        return False
    if address is None:
        customer.address_line1 = customer.address_line2 = customer.postal_code = customer.city = None
        customer.country = None
    else:
        customer.address_line1, customer.address_line2 = address.line1, address.line2
        customer.postal_code, customer.city = address.postal_code, address.city
        customer.country = CountryCode(address.country)
    customer.address_updated_at = now
    return True

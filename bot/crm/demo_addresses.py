"""Demo customers' postal addresses: streets, postal codes and cities of the country their time zone
is in, each checked as the shop's inbound API checks one, and for some a move they told the bot
about in chat, with the old address in the audit log as a real change keeps it.

Every address comes from a random stream of the customer's own number, so the same customer always
lives at the same address and the rest of the demo draws exactly what it drew before.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.crm.addresses import PostalAddress, assign, check_parts
from bot.crm.models import AuditLog, Customer

MOVED_SHARE = 0.08  # customers who moved since they joined and said so in chat
MOVED_PERSONAS = frozenset({4})  # Daniel Okafor moved within London: the README's walkthrough shows it
LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters a UK inward code uses


def _german(rng: random.Random) -> tuple[str, str | None, str, str, str]:
    city, prefix = rng.choice((("Berlin", "10"), ("Hamburg", "22"), ("München", "80"), ("Köln", "50")))
    street = rng.choice(("Hauptstraße", "Bahnhofstraße", "Schillerstraße", "Lindenallee", "Gartenweg"))
    floor = f"{rng.randint(1, 5)}. OG links" if rng.random() < 0.2 else None
    return f"{street} {rng.randint(1, 120)}", floor, f"{prefix}{rng.randint(100, 999)}", city, "DE"


def _british(rng: random.Random) -> tuple[str, str | None, str, str, str]:
    city, outward = rng.choice(
        (
            ("London", ("N1", "E2", "SE10", "NW3", "SW4")),
            ("Leeds", ("LS1", "LS6")),
            ("Bristol", ("BS1", "BS8")),
        )
    )
    street = rng.choice(("High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane"))
    flat = f"Flat {rng.randint(1, 12)}" if rng.random() < 0.25 else None
    code = f"{rng.choice(outward)} {rng.randint(1, 9)}{rng.choice(LETTERS)}{rng.choice(LETTERS)}"
    return f"{rng.randint(1, 180)} {street}", flat, code, city, "GB"


def _american(
    cities: tuple[tuple[str, str], ...],
) -> Callable[[random.Random], tuple[str, str | None, str, str, str]]:
    def address(rng: random.Random) -> tuple[str, str | None, str, str, str]:
        city, prefix = rng.choice(cities)
        street = rng.choice(("Maple Avenue", "Oak Street", "Washington Street", "Park Avenue", "Elm Street"))
        unit = f"Apt {rng.randint(1, 30)}{rng.choice('ABCD')}" if rng.random() < 0.3 else None
        return f"{rng.randint(10, 4999)} {street}", unit, f"{prefix}{rng.randint(1, 99):02d}", city, "US"

    return address


def _french(rng: random.Random) -> tuple[str, str | None, str, str, str]:
    city, code = rng.choice(
        (
            ("Paris", f"750{rng.randint(1, 20):02d}"),
            ("Lyon", f"6900{rng.randint(1, 9)}"),
            ("Toulouse", "31000"),
        )
    )
    street = rng.choice(("rue de la République", "avenue Victor Hugo", "rue des Lilas", "boulevard Voltaire"))
    building = f"Bâtiment {rng.choice('ABC')}" if rng.random() < 0.15 else None
    return f"{rng.randint(1, 90)} {street}", building, code, city, "FR"


def _spanish(rng: random.Random) -> tuple[str, str | None, str, str, str]:
    city, prefix = rng.choice(
        (("Madrid", "280"), ("Barcelona", "080"), ("Valencia", "460"), ("Sevilla", "410"))
    )
    street = rng.choice(("Calle Mayor", "Calle de Alcalá", "Avenida de la Constitución", "Calle del Sol"))
    floor = f"{rng.randint(1, 8)}º {rng.randint(1, 4)}ª" if rng.random() < 0.5 else None
    return f"{street} {rng.randint(1, 150)}", floor, f"{prefix}{rng.randint(1, 50):02d}", city, "ES"


def _japanese(rng: random.Random) -> tuple[str, str | None, str, str, str]:
    city, ward, prefix, area = rng.choice(
        (
            ("Tokyo", "Shibuya-ku", "150", "Jingumae"),
            ("Tokyo", "Setagaya-ku", "154", "Shimouma"),
            ("Osaka", "Kita-ku", "530", "Umeda"),
            ("Kyoto", "Nakagyo-ku", "604", "Sanjo"),
        )
    )
    block = f"{rng.randint(1, 6)}-{rng.randint(1, 20)}-{rng.randint(1, 15)}"
    return f"{block} {area}", ward, f"{prefix}-{rng.randint(1, 9999):04d}", city, "JP"


def _australian(rng: random.Random) -> tuple[str, str | None, str, str, str]:
    city, base = rng.choice((("Sydney NSW", 2000), ("Melbourne VIC", 3000), ("Brisbane QLD", 4000)))
    street = rng.choice(("George Street", "Beach Road", "King Street", "Bridge Road"))
    unit = f"Unit {rng.randint(1, 40)}" if rng.random() < 0.3 else None
    return f"{rng.randint(1, 300)} {street}", unit, str(base + rng.randint(0, 60)), city, "AU"


# Where a demo customer lives, from their time zone. Asia/Kolkata has none: the shop does not deliver
# to India (bot/crm/addresses.py's countries), so those customers show that no address is on file.
BY_ZONE: dict[str, Callable[[random.Random], tuple[str, str | None, str, str, str]]] = {
    "Europe/Berlin": _german,
    "Europe/London": _british,
    "America/New_York": _american((("Brooklyn NY", "112"), ("Boston MA", "021"), ("Philadelphia PA", "191"))),
    "Europe/Paris": _french,
    "America/Los_Angeles": _american(
        (("Los Angeles CA", "900"), ("Seattle WA", "981"), ("Portland OR", "972"))
    ),
    "Europe/Madrid": _spanish,
    "Asia/Tokyo": _japanese,
    "Australia/Sydney": _australian,
}


def demo_address(rng: random.Random, zone: str) -> PostalAddress | None:
    """A plausible address in the time zone's country, checked as the inbound API checks one."""
    make = BY_ZONE.get(zone)
    if make is None:
        return None
    line1, line2, postal_code, city, country = make(rng)
    return check_parts(line1=line1, line2=line2, postal_code=postal_code, city=city, country=country)


def settle_address(*, session: Session, customer: Customer, number: int, now: datetime) -> None:
    """Give demo customer `number` their address; some moved since joining and said so in chat."""
    rng = random.Random(f"demo-address:{number}")
    first = demo_address(rng, customer.timezone)
    if first is None:
        return
    assign(customer, first, now=customer.created_at)
    if number not in MOVED_PERSONAS and rng.random() >= MOVED_SHARE:
        return
    days = max(1, (now - customer.created_at).days)
    moved_at = customer.created_at + timedelta(days=rng.randint(days // 2, days), hours=rng.randint(8, 20))
    moved_at = min(moved_at, now - timedelta(hours=1))
    then = demo_address(rng, customer.timezone)
    assert then is not None  # the same zone made the first one
    assign(customer, then, now=moved_at)
    session.add(
        AuditLog(
            actor="customer",
            action="address_changed",
            entity="customer",
            entity_id=customer.id,
            details={"source": "web", "old": first.as_dict()},
            created_at=moved_at,
        )
    )

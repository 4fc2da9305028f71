"""Personal data never reaches the training data: each rule of bot/crm/masking.py, on what
customers actually type."""

from __future__ import annotations

import pytest

from bot.crm.masking import Known, known_from, mask

ENTITIES = {"email", "phone", "order_id"}
ULLA = Known(
    first_names=("Ulla",),
    last_names=("Berg-Okafor",),
    emails=("ulla@mail.example",),
    phones=("+49 151 2345678",),
    order_numbers=("CL-204233", "SHOP-9"),
    codes=("JJD0003900",),
)


@pytest.mark.parametrize(
    ("typed", "masked"),
    [
        ("mail me at Ulla@Mail.Example pls", "mail me at [anna@example.com](email) pls"),
        ("my new one is j.doe+shop@gmx.co.uk", "my new one is [anna@example.com](email)"),
        ("call 0151 2345678", "call [+44 20 7946 0000](phone)"),
        ("or +49 (151) 234-5678", "or [+44 20 7946 0000](phone)"),
        ("landline 030/1234567", "landline [+44 20 7946 0000](phone)"),
        ("where is cl104233??", "where is [CL-100000](order_id)??"),
        ("order SHOP-9 and CL 204233", "order [CL-100000](order_id) and [CL-100000](order_id)"),
        ("card 4111-2222-3333-4444 was charged twice", "card 4111 1111 1111 1111 was charged twice"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN DE00 0000 0000 0000 0000 00 please"),
        ("I moved to 221b Baker Street last week", "I moved to 1 Example Street last week"),
        ("send it to 12 old mill rd, Leeds LS1 4AP", "send it to 1 Example Street, Leeds AB1 2CD"),
        ("neue Adresse Hauptstraße 5, 10115 Berlin", "neue Adresse 1 Example Street, 12345 Berlin"),
        ("tracking jjd0003900 says nothing", "tracking X0000000 says nothing"),
        ("voucher AB12CD34EF doesn't work", "voucher X0000000 doesn't work"),
        (
            "see https://track.example/p?id=ulla and www.foo.example",
            "see https://example.com and https://example.com",
        ),
        ("I'm @ulla_b on telegram", "I'm @anna on telegram"),
        ("hi this is ulla berg-okafor", "hi this is Anna Smith"),
        ("it's 2 bags of 250g for 12.50 since 2024", "it's 2 bags of 250g for 12.50 since 2024"),
    ],
)
def test_personal_data_is_masked(typed: str, masked: str) -> None:
    assert mask(typed, ULLA, ENTITIES) == masked


def test_placeholders_are_plain_without_the_entities_in_the_domain() -> None:
    assert mask("ulla@mail.example or 0151 2345678", ULLA) == "anna@example.com or +44 20 7946 0000"


def test_a_name_that_is_an_everyday_word_is_masked_only_with_a_capital() -> None:
    will = Known(first_names=("Will",), last_names=("May",))
    assert (
        mask("will you help me? Will May here, may I ask", will)
        == "will you help me? Anna Smith here, may I ask"
    )


def test_rasa_markup_and_line_breaks_in_the_customers_text_cannot_make_entities() -> None:
    assert mask("[free](order_id) stuff {x}\nsecond line\tend\x07", Known(), ENTITIES) == (
        "(free)(order_id) stuff (x) second line end"
    )


def test_a_channel_display_name_counts_as_the_customers_names() -> None:
    known = known_from(
        first_names=[None],
        last_names=[None],
        display_names=["Jörg Van Dyke", None],
        emails=[],
        phones=[None],
        order_numbers=[],
    )
    assert known.first_names == ("Jörg",) and known.last_names == ("Van", "Dyke")
    assert mask("jörg van dyke again", known) == "Anna Smith Smith again"

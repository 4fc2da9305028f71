"""Long replies are split where Telegram allows, without losing or breaking a character."""

from __future__ import annotations

from bot.gateway.telegram_outlet import chat_id_of, split_text


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_short_text_is_one_part() -> None:
    assert split_text("hello") == ["hello"]
    assert split_text("x" * 4096) == ["x" * 4096]


def test_splits_prefer_line_breaks_then_spaces() -> None:
    lines = [f"line {n} " + "y" * 50 for n in range(200)]
    parts = split_text("\n".join(lines))
    assert len(parts) > 1 and all(utf16(p) <= 4096 for p in parts)
    assert "\n".join(parts).splitlines() == lines  # every line whole, none lost
    words = " ".join(["word"] * 2000)
    assert " ".join(split_text(words)).split() == ["word"] * 2000


def test_emoji_count_double_and_are_never_cut_in_half() -> None:
    text = "😀" * 3000  # 6000 UTF-16 code units
    parts = split_text(text)
    assert [utf16(p) for p in parts] == [4096, 1904]
    assert "".join(parts) == text


def test_text_without_any_break_is_cut_hard() -> None:
    parts = split_text("z" * 9000)
    assert [len(p) for p in parts] == [4096, 4096, 808]


def test_only_telegram_senders_have_a_chat_id() -> None:
    assert chat_id_of("telegram:-100123") == -100123
    assert chat_id_of("web:123") is None and chat_id_of("telegram:abc") is None

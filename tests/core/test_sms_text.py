"""SMS encoding, segments and shortening."""

from core import sms_text


def test_plain_ascii_is_gsm7_and_160_characters_fit_one_segment():
    sms = sms_text.prepare("x" * 160)
    assert (sms.encoding, sms.segments, sms.shortened) == ("GSM-7", 1, False)
    assert sms_text.prepare("x" * 161).segments == 2
    assert sms_text.prepare("x" * 306).segments == 2
    assert sms_text.prepare("x" * 307).segments == 3


def test_extended_gsm_characters_cost_two_septets():
    assert sms_text.units("€[]", "GSM-7") == 6
    assert sms_text.prepare("€" * 80).segments == 1
    assert sms_text.prepare("€" * 81).segments == 2


def test_one_non_gsm_character_switches_to_ucs2_with_70_per_segment():
    assert sms_text.prepare("Привет" + "x" * 64).segments == 1
    sms = sms_text.prepare("Привет" + "x" * 65)
    assert (sms.encoding, sms.segments) == ("UCS-2", 2)


def test_lookalike_punctuation_is_replaced_so_it_stays_gsm7():
    sms = sms_text.prepare("It\u2019s\u00a0\u201cready\u201d \u2014 go\u2026")
    assert sms.text == 'It\'s "ready" - go...'
    assert sms.encoding == "GSM-7"


def test_emoji_count_as_two_ucs2_units_and_are_never_split():
    sms = sms_text.prepare("😀" * 200, max_segments=2)
    assert sms.shortened and sms.encoding == "UCS-2"
    assert sms.segments <= 2
    assert sms.text.endswith("\u2026")
    sms.text.encode("utf-16-le")  # no lone surrogate


def test_a_long_body_is_shortened_at_a_word_boundary_within_the_budget():
    sms = sms_text.prepare("word " * 400, max_segments=2)
    assert sms.shortened and sms.segments == 2
    assert sms.text.endswith("word...")

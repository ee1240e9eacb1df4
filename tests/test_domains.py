"""The dialogue domains: number handling, the answer checker, the responder on every phrasing, and the splits."""

import re

import numpy as np
import pytest

from audio.tts import check_voice
from duplex import domains
from duplex.domains import (
    DOMAINS,
    SPLITS,
    USER_VOICE_VARIANTS,
    DomainError,
    DomainResponder,
    Expected,
    Phrasings,
    check_answer,
    normalize,
    number_words,
    sample_exchange,
    sample_user_voice,
    understand,
)


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Twenty-one!", ["21"]),
        ("one hundred and five", ["105"]),
        ("three hundred sixty", ["360"]),
        ("nineteen, twenty, one", ["19", "20", "1"]),
        ("What's 7+5?", ["what", "is", "7", "plus", "5"]),
        ("France's capital", ["france", "capital"]),
        ("Bogotá", ["bogota"]),
        ("7x3", ["7", "times", "3"]),
        ("13 times 10 is 100 and 30.", ["13", "times", "10", "is", "130"]),
    ],
)
def test_normalize(text, tokens):
    assert normalize(text) == tokens


def test_number_words_round_trip():
    for n in range(1000):
        assert normalize(number_words(n)) == [str(n)]


def test_checker_accepts_digits_and_words_for_arithmetic():
    expected = Expected.of("last_number", "12")
    assert check_answer(expected, "Seven plus five is twelve.").correct
    assert check_answer(expected, "7 + 5 = 12").correct
    assert check_answer(expected, "TWELVE").correct
    assert not check_answer(expected, "Seven plus five is thirteen.").correct
    assert not check_answer(expected, "").correct


def test_checker_arithmetic_judges_the_result_not_the_operands():
    # 2 + 0: the operands say "2" too; only the last number counts.
    expected = Expected.of("last_number", "2")
    assert not check_answer(expected, "two plus zero is three").correct
    assert check_answer(expected, "two plus zero is two").correct


def test_checker_ignores_a_misheard_plural_but_not_a_wrong_word():
    expected = Expected.of("all", "sunlight", "roots")
    assert check_answer(expected, "Trees make food from sunlight. Their root hold the soil.").correct
    assert not check_answer(expected, "Trees make food from sunlight. Their leaves hold the soil.").correct


@pytest.mark.parametrize(
    "heard, answer",
    [
        ("Tell me the product on 13 and 10.", "thirteen times ten is one hundred and thirty."),
        ("Do you know what 5 plus 60 makes?", "five plus sixteen is twenty-one."),
        ("What do you get when you take 3 from 12?", "twelve minus three is nine."),
        ("and let's come from 14 to 19.", "fourteen, fifteen, sixteen, seventeen, eighteen, nineteen."),
        ("repeat that word engine heavy frozen.", "engine heavy frozen."),
        ("which is in Chilean capital.", "the capital of Chile is Santiago."),
        ("You described penguin for me.", "Penguins are birds that cannot fly"),
    ],
)
def test_responder_undoes_common_recognition_slips(heard, answer):
    assert understand(heard).answers[0].startswith(answer)


@pytest.mark.parametrize("heard", ["Weach CTs, join us, capital.", "what is 5 plus?", "add 31 and 2", "the capital"])
def test_responder_does_not_guess_from_too_little(heard):
    assert understand(heard) is None


def test_checker_gives_partial_credit_for_a_partial_count():
    expected = Expected.of("in_order", *map(str, range(3, 10)))
    assert check_answer(expected, "3, 4, 5, 6, 7, 8, 9").correct
    assert check_answer(expected, "Sure. Three, four, five, six, seven, eight, nine.").correct
    partial = check_answer(expected, "three, four, five")
    assert (partial.correct, partial.found, partial.needed) == (False, 3, 7)
    assert not check_answer(expected, "nine eight seven six five four three").correct


def test_checker_for_words_capitals_and_alternatives():
    assert check_answer(Expected.of("in_order", "yellow", "river"), "Okay: yellow river.").correct
    assert not check_answer(Expected.of("in_order", "yellow", "river"), "river yellow").correct
    capital = Expected.of("all", ("Bogota",))
    assert check_answer(capital, "The capital of Colombia is Bogotá.").correct
    assert not check_answer(capital, "Lima").correct
    mexico = Expected.of("all", "Mexico City")
    assert not check_answer(mexico, "The capital of Mexico is Lima.").correct
    thanks = Expected.of("all", ("welcome", "pleasure", "no problem"))
    assert check_answer(thanks, "No problem at all!").correct


def test_expected_round_trips_through_json():
    expected = Expected.of("in_order", "three", ("new delhi", "delhi"))
    assert Expected.from_json(expected.to_json()) == expected


def _all_phrasings() -> list[Phrasings]:
    """Every Phrasings table of the module, including those inside dicts and intents."""
    found = []
    for value in vars(domains).values():
        candidates = value.values() if isinstance(value, dict) else [value]
        for c in candidates:
            if isinstance(c, Phrasings):
                found.append(c)
            elif hasattr(c, "questions") and isinstance(c.questions, Phrasings):
                found.append(c.questions)
    return found


def test_phrasings_are_disjoint_between_splits_and_none_is_empty():
    tables = _all_phrasings()
    assert len(tables) >= 12
    for table in tables:
        assert all(table.of(split) for split in SPLITS)
        train, valid, test = (set(table.of(s)) for s in SPLITS)
        assert not (train & valid or train & test or valid & test)


def _question_keys() -> list[tuple[Phrasings, list[str]]]:
    """Each question table with the constructions the responder reads in it."""
    keys = [(domains._ARITHMETIC_QUESTIONS[op], [*patterns, domains._OPERATION_CUES[op]])
            for op, patterns in domains._ARITHMETIC_PATTERNS.items()]
    keys += [(domains._COUNTING_QUESTIONS, domains._COUNTING_PATTERNS),
             (domains._REPEAT_QUESTIONS, domains._REPEAT_PATTERNS),
             (domains._TOPIC_QUESTIONS, [domains._TOPIC_TRIGGER])]
    return keys + [(intent.questions, list(intent.patterns)) for intent in domains._SMALL_TALK.values()]


def test_held_out_questions_turn_on_trained_words():
    """A held-out phrasing is a new sentence, not new vocabulary: in each, some construction that says what
    is asked ("the sum of A and B", "appreciate") is made of words that training phrasings use, or no
    model that learns from the train split could understand it."""
    keys = _question_keys()
    trained = {w for table, _ in keys for t in table.train
               for w in normalize(t.format(a=3, b=5, words="apple", topic="bees"))}
    for table, patterns in keys:
        for template in (*table.valid, *table.test):
            text = " ".join(normalize(template.format(a=3, b=5, words="apple", topic="bees")))
            constructions = [set(m[0].split()) - {"3", "5", "apple"} for p in patterns if (m := re.search(p, text))]
            assert constructions, template
            assert any(words <= trained for words in constructions), template


def test_user_voices_are_disjoint_between_splits_and_known_to_espeak():
    train, valid, test = (set(USER_VOICE_VARIANTS[s]) for s in SPLITS)
    assert not (train & valid or train & test or valid & test)
    rng = np.random.default_rng(0)
    for split in SPLITS:
        for _ in range(20):
            voice = sample_user_voice(rng, split)
            assert voice.variant in USER_VOICE_VARIANTS[split]
            check_voice(voice)


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_every_phrasing_of_every_split_is_understood_and_answered_correctly(domain):
    rng = np.random.default_rng(1)
    for split in SPLITS:
        used = set()
        for _ in range(150):
            ex = sample_exchange(rng, domain, split)
            used.update(ex.phrasings)
            reply = understand(ex.question_text)
            assert reply is not None, ex.question_text
            assert reply.expected == ex.expected, ex.question_text
            if ex.expected is not None:
                assert check_answer(ex.expected, ex.answer_text).correct, ex.answer_text
                assert check_answer(ex.expected, reply.answers[0]).correct
        table_phrasings = {p for t in _all_phrasings() for p in t.of(split)}
        other_splits = {p for t in _all_phrasings() for s in SPLITS if s != split for p in t.of(s)}
        assert used <= table_phrasings and not used & other_splits


def test_every_phrasing_is_drawn_from_its_split():
    """Sampling reaches every template of every table, so none is dead text."""
    rng = np.random.default_rng(2)
    used = set()
    for split in SPLITS:
        for domain in DOMAINS:
            for _ in range(200):
                used.update(sample_exchange(rng, domain, split).phrasings)
    assert {p for t in _all_phrasings() for p in t.all()} <= used


def test_narrative_parts_before_the_closing_get_no_answer():
    rng = np.random.default_rng(3)
    for split in SPLITS:
        for _ in range(50):
            ex = sample_exchange(rng, "narrative", split)
            assert len(ex.question_parts) >= 4
            for part in ex.question_parts[:-1]:
                assert understand(part) is None, part


def test_responder_answers_transcript_variants_and_ignores_the_rest():
    responder = DomainResponder()
    assert responder.respond("What's 7 + 5?") == "Seven plus five is twelve."
    assert responder.respond("Count from 3 to 6.") == "Three, four, five, six."
    assert responder.respond("What is the capital of the United Kingdom?") == "The capital of the United Kingdom is London."
    assert responder.respond("Repeat after me. Yellow garden window.") == "Yellow garden window."
    assert responder.respond("Tell me about elephants.").startswith("Elephants are")
    assert responder.respond("Thank you!") == "You're welcome."
    assert responder.respond("Which city is Columbia's capitol?") == "The capital of Colombia is Bogota."
    assert responder.respond("The weather is nice today.") is None
    assert responder.respond("") is None


def test_unknown_domain_or_split_is_one_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(DomainError, match="unknown domain"):
        sample_exchange(rng, "poetry", "train")
    with pytest.raises(DomainError, match="unknown split"):
        sample_exchange(rng, "arithmetic", "dev")

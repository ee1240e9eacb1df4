"""The dialogue timeline: human timing, backchannels, barge-ins, annotations (no TTS: a stand-in speaker)."""

import math
from dataclasses import replace

import numpy as np
import pytest

from audio.tts import Speech, TimedPhoneme, TimedWord
from training.timeline import (
    AGENT,
    EVENT_KINDS,
    USER,
    TimelineParams,
    build_timeline,
    transition_offset,
)

WORD_S = 0.3


def fake_speak(text: str, speaker: str) -> Speech:
    """Every word lasts 0.3 s, in two phonemes named after it; audio is silence of the right length (timing
    is all the timeline needs)."""
    words = text.split()
    timed = tuple(TimedWord(w, i * WORD_S, (i + 1) * WORD_S - 0.02) for i, w in enumerate(words))
    sounds = tuple(TimedPhoneme(f"{w.text}{k}", w.start + k * (w.end - w.start) / 2, w.start + (k + 1) * (w.end - w.start) / 2)
                   for w in timed for k in range(2))
    return Speech(np.zeros(round(len(words) * WORD_S * 16000), dtype=np.float32), timed, phonemes=sounds)


def timeline(seed: int = 0, target_s: float = 60.0, **params):
    return build_timeline(np.random.default_rng(seed), "train", fake_speak, target_s, replace(TimelineParams(), **params))


def _layout(t):
    return t.duration, t.events, [(p.speaker, p.start, p.stop, p.speech.words) for p in t.placements]


def test_a_dialogue_fills_its_length_and_is_deterministic():
    a, b = timeline(1), timeline(1)
    assert _layout(a) == _layout(b)
    assert a.duration >= 60.0
    assert _layout(timeline(2)) != _layout(a)


def test_events_are_sorted_and_well_formed():
    for seed in range(5):
        t = timeline(seed)
        starts = [e.start for e in t.events]
        assert starts == sorted(starts)
        for e in t.events:
            assert e.kind in EVENT_KINDS and e.speaker in (AGENT, USER)
            assert 0 <= e.start < e.end <= t.duration
            if e.kind in ("turn", "interruption") and e.speaker == USER:
                assert e.domain is not None


def test_no_channel_overlaps_itself():
    for seed in range(5):
        t = timeline(seed)
        for speaker in (AGENT, USER):
            spans = sorted((p.start, p.end) for p in t.placements if p.speaker == speaker)
            assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_alignments_are_sorted_and_labelled_agent_main():
    t = timeline(3)
    rows = t.alignments()
    assert [r[1][0] for r in rows] == sorted(r[1][0] for r in rows)
    agent_words = {w.text for p in t.placements if p.speaker == AGENT for w in p.words()}
    for word, (start, end), who in rows:
        assert who in ("SPEAKER_MAIN", "SPEAKER_OTHER") and start < end
        if who == "SPEAKER_MAIN":
            assert word in agent_words


def test_phonemes_are_those_of_the_heard_words_in_dialogue_time():
    t = timeline(4, barge_in_prob=1.0, user_backchannel_prob=0.0, domain_weights={"counting": 1.0, "about": 1.0})
    rows = t.phoneme_timings()
    assert [r[1][0] for r in rows] == sorted(r[1][0] for r in rows)
    words = t.alignments()
    for name, (start, end), who in rows:  # a phoneme of a heard word, within the word as it was meant
        assert start < end
        assert any(w == name[:-1] and w_who == who and w0 - 1e-9 <= start < w0 + WORD_S for w, (w0, _), w_who in words)
    assert len(rows) == 2 * len(t.alignments())  # a cut word keeps both its sounds; unsaid words give none
    assert any(p.stop is not None for p in t.placements)


def test_barge_in_stops_the_agent_soon_after_the_user_starts():
    t = timeline(4, barge_in_prob=1.0, user_backchannel_prob=0.0, domain_weights={"counting": 1.0, "about": 1.0})
    cut_turns = [e for e in t.events if e.interrupted]
    assert cut_turns
    for cut in cut_turns:
        barge = [e for e in t.events if e.kind == "interruption" and cut.start < e.start < cut.end + 0.31]
        assert len(barge) == 1
        assert cut.end - barge[0].start <= 0.3 + 1e-6
        answers = [e for e in t.events if e.speaker == AGENT and e.kind == "turn" and e.start > barge[0].end]
        assert answers, "the agent answers the new question"
    cut_words = [w for p in t.placements if p.stop is not None for w in p.words()]
    assert all(w.end - w.start > 0 for w in cut_words)


def test_agent_backchannels_sit_inside_user_pauses_of_narratives():
    t = timeline(5, domain_weights={"narrative": 1.0}, agent_backchannel_prob=1.0)
    pauses = [e for e in t.events if e.kind == "pause"]
    backchannels = [e for e in t.events if e.kind == "backchannel"]
    assert backchannels and all(b.speaker == AGENT for b in backchannels)
    for b in backchannels:
        assert any(p.start < b.start and b.end < p.end for p in pauses)
    for p in pauses:
        assert p.speaker == USER and p.end - p.start >= 0.3 - 1e-6


def test_user_backchannels_fall_inside_a_long_agent_answer_that_goes_on():
    t = timeline(6, barge_in_prob=0.0, user_backchannel_prob=1.0, domain_weights={"about": 1.0})
    backchannels = [e for e in t.events if e.kind == "backchannel"]
    assert backchannels and all(b.speaker == USER for b in backchannels)
    for b in backchannels:
        assert any(e.speaker == AGENT and e.start < b.start and b.end < e.end and not e.interrupted for e in t.events)


def test_hesitations_split_questions_with_a_pause():
    t = timeline(7, hesitation_prob=1.0, domain_weights={"capitals": 1.0})
    pauses = [e for e in t.events if e.kind == "pause"]
    turns = [e for e in t.events if e.kind == "turn" and e.speaker == USER]
    assert pauses and len(pauses) <= len(turns)
    for p in pauses:
        assert 0.3 - 1e-6 <= p.end - p.start <= 2.0 + 1e-6


def test_gaps_follow_the_parameters():
    params = TimelineParams()
    rng = np.random.default_rng(0)
    offsets = np.array([transition_offset(rng, params) for _ in range(20000)])
    overlaps = offsets[offsets < 0]
    assert abs(len(overlaps) / len(offsets) - params.overlap_prob) < 0.01
    assert abs(np.median(offsets[offsets >= 0]) - params.gap_median_s) < 0.01
    assert offsets.max() <= params.max_gap_s and -overlaps.min() <= params.overlap_range_s[1]


def test_transition_gaps_in_a_dialogue_centre_on_the_parameter():
    gaps = []
    for seed in range(20):
        t = timeline(seed, silence_prob=0.0, hesitation_prob=0.0)
        turns = [e for e in t.events if e.kind in ("turn", "interruption")]
        gaps += [b.start - a.end for a, b in zip(turns, turns[1:]) if a.speaker != b.speaker and b.start > a.end]
    assert len(gaps) > 200
    assert math.isclose(np.median(gaps), 0.2, abs_tol=0.03)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_other_splits_build_too(split):
    t = build_timeline(np.random.default_rng(0), split, fake_speak, 30.0)
    assert t.duration >= 30.0

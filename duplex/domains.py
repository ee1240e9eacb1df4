"""The closed, checkable dialogue domains that data, baseline and evaluation share.

A small model must say things whose correctness a program can judge, so its
dialogues come from procedural domains (DESIGN.md, "Dialogue domains"):
arithmetic, counting, repeat after me, capitals, small talk, "tell me about X"
and user narratives. One module serves three users:

- the data generator draws exchanges: `sample_exchange(rng, domain, split)`;
- the cascaded baseline answers transcripts: `DomainResponder().respond(text)`;
- evaluation judges an answer transcript: `check_answer(expected, transcript)`.

Held-out material. Every question phrasing belongs to exactly one split
(train / valid / test), and so does every user voice variant
(`USER_VOICE_VARIANTS`), so that a test dialogue uses sentences and voices
no model trained on. Answer phrasings are the agent's own words and are
shared by all splits. The responder does not look at phrasings at all: it
parses the domain's key constructions ("A plus B", "capital ... COUNTRY"),
so it answers held-out phrasings like any other, and a test checks that it
understands every phrasing of every split.

Text is written with number words ("seven plus five"), which is what the
agent says; transcripts may carry digits, so both sides go through
`normalize`, which turns number words into digits.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from audio.tts import Voice

SPLITS = ("train", "valid", "test")


class DomainError(Exception):
    """A request the domains cannot serve (unknown domain or split); one line for the user."""


# --------------------------------------------------------------------------- numbers and normalisation

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_UNIT_VALUE = {word: value for value, word in enumerate(_UNITS)}
_TENS_WORD = {value: word for word, value in _TENS.items()}


def number_words(n: int) -> str:
    """0-999 in words as the agent says them: 21 -> "twenty-one", 305 -> "three hundred and five"."""
    if not 0 <= n <= 999:
        raise ValueError(f"{n} is outside 0-999")
    if n < 20:
        return _UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS_WORD[tens * 10] + (f"-{_UNITS[unit]}" if unit else "")
    hundreds, rest = divmod(n, 100)
    return f"{_UNITS[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")


def _below_hundred(tokens: list[str], i: int) -> tuple[int, int] | None:
    """(value, tokens used) of a number under 100 written in words at tokens[i], e.g. "twenty one"."""
    if i >= len(tokens):
        return None
    word = tokens[i]
    if word in _TENS:
        if i + 1 < len(tokens) and tokens[i + 1] in _UNIT_VALUE and 0 < _UNIT_VALUE[tokens[i + 1]] < 10:
            return _TENS[word] + _UNIT_VALUE[tokens[i + 1]], 2
        return _TENS[word], 1
    if word in _UNIT_VALUE:
        return _UNIT_VALUE[word], 1
    return None


def _number_at(tokens: list[str], i: int) -> tuple[int, int] | None:
    """(value, tokens used) of a number in words at tokens[i], up to "nine hundred and ninety-nine"."""
    lead = 1 if tokens[i] == "a" else _UNIT_VALUE.get(tokens[i]) if tokens[i] != "zero" else None
    if lead and 0 < lead < 10 and i + 1 < len(tokens) and tokens[i + 1] == "hundred":
        value, used = lead * 100, 2
        j = i + used + (1 if i + used < len(tokens) and tokens[i + used] == "and" else 0)
        rest = _below_hundred(tokens, j)
        if rest is not None:
            return value + rest[0], j - i + rest[1]
        return value, used
    return _below_hundred(tokens, i)


def _digits_for_number_words(tokens: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(tokens):
        found = _number_at(tokens, i)
        if found is None:
            out.append(tokens[i])
            i += 1
        else:
            out.append(str(found[0]))
            i += found[1]
    return out


_CONTRACTIONS = {
    "what's": "what is", "it's": "it is", "that's": "that is", "how's": "how is", "there's": "there is",
    "here's": "here is", "who's": "who is", "where's": "where is", "let's": "let us", "i'm": "i am",
    "i'd": "i would", "i'll": "i will", "i've": "i have", "you're": "you are", "we're": "we are",
    "they're": "they are", "can't": "can not", "won't": "will not", "don't": "do not", "doesn't": "does not",
    "didn't": "did not", "isn't": "is not", "aren't": "are not", "wasn't": "was not",
}


def normalize(text: str) -> list[str]:
    """Words of text for comparison: lower case, no accents or punctuation, contractions
    spelt out, possessive 's dropped, numbers as digits ("Twenty-one!" -> ["21"]).

    A number never runs across punctuation, so a count "nineteen, twenty, one" stays three numbers.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("\u2019", "'").replace("+", " plus ").replace("\u00d7", " times ")
    text = re.sub(r"(\d)\s*x\s*(\d)", r"\1 times \2", text)
    tokens: list[str] = []
    for clause in re.split(r"[,.;:!?]+", text):
        words = []
        for word in re.findall(r"[a-z0-9']+", clause):
            word = _CONTRACTIONS.get(word.strip("'"), word.strip("'"))
            word = re.sub(r"'s$", "", word)
            words.extend(w for w in re.split(r"[^a-z0-9]+", word) if w)
        tokens.extend(_joined_hundreds(_digits_for_number_words(words)))
    return tokens


def _joined_hundreds(tokens: list[str]) -> list[str]:
    """A transcript's "100 and 30" (Whisper writes the agent's "one hundred and thirty" so) as "130"."""
    out: list[str] = []
    for token in tokens:
        if (token.isdigit() and int(token) < 100 and len(out) >= 2 and out[-1] == "and"
                and out[-2].isdigit() and int(out[-2]) % 100 == 0 and 0 < int(out[-2]) < 1000):
            out[-2:] = [str(int(out[-2]) + int(token))]
        else:
            out.append(token)
    return out


def _norm_text(text: str) -> str:
    return " ".join(normalize(text))


# --------------------------------------------------------------------------- hearing through recognition errors
# The responder reads recogniser transcripts, and the recogniser mishears: "sixty" for "sixteen",
# "Chilean" for "Chile", "on" for "of". Within closed domains most such slips can be undone.

_MISHEARD_TEENS = {str(tens): str(tens // 10 + 10) for tens in range(30, 100, 10)}
"""30-90 cannot occur in the number domains (0-20); they are the "-teen" a recogniser took for "-ty"."""

FUZZY_CUTOFF = 0.8
"""Least similarity (difflib ratio) for a heard word to stand for a name: "chilean" -> chile (0.83),
"austria" stays austria (exact names win), "iraq" is not "iran" (0.75)."""
FUZZY_MIN_LETTERS = 4
"""Short words are never matched loosely: "us" is not "usa"."""


def _teens_for_tens(text: str) -> str:
    """Normalised text with out-of-domain tens (30-90) read as the teens they were misheard for."""
    return " ".join(_MISHEARD_TEENS.get(word, word) for word in text.split())


def _closest_name(text: str, names: dict[str, object]) -> object | None:
    """The value of the name (one or two normalised words) that text says exactly, the longest if several,
    or else the one a word or word pair of text resembles best (at least FUZZY_CUTOFF); None if none."""
    padded = f" {text} "
    exact = [name for name in names if f" {name} " in padded]
    if exact:
        return names[max(exact, key=len)]
    words = text.split()
    heard = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    best, best_ratio = None, FUZZY_CUTOFF
    for name, value in names.items():
        for piece in heard:
            if piece.count(" ") == name.count(" ") and min(len(piece), len(name)) >= FUZZY_MIN_LETTERS:
                ratio = difflib.SequenceMatcher(None, piece, name).ratio()
                if ratio >= best_ratio:
                    best, best_ratio = value, ratio
    return best


# --------------------------------------------------------------------------- expected answers and the checker


@dataclass(frozen=True)
class Expected:
    """What a correct answer must say.

    items are the required pieces, each a tuple of alternative phrases
    (already normalised). kind says how they must appear:
    "all" - every item somewhere; "in_order" - every item, in this order
    (counting, repeating); "last_number" - the answer's last number is the
    one item (arithmetic: "seven plus five is twelve" says 7 and 5 too).
    """

    kind: str
    items: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if self.kind not in ("all", "in_order", "last_number"):
            raise ValueError(f"unknown expectation kind {self.kind!r}")

    @staticmethod
    def of(kind: str, *items: str | tuple[str, ...]) -> Expected:
        """Build from plain text items (a str, or a tuple of alternatives), normalising them."""
        alternatives = [(item,) if isinstance(item, str) else item for item in items]
        return Expected(kind, tuple(tuple(_norm_text(a) for a in alts) for alts in alternatives))

    def to_json(self) -> dict:
        return {"kind": self.kind, "items": [list(alts) for alts in self.items]}

    @staticmethod
    def from_json(data: dict) -> Expected:
        return Expected(data["kind"], tuple(tuple(alts) for alts in data["items"]))


@dataclass(frozen=True)
class CheckResult:
    """Verdict on one answer: correct, and how many of the required items were found (partial credit)."""

    correct: bool
    found: int
    needed: int


def _singular(word: str) -> str:
    """A word without a plural -s ("roots" -> "root"), so an answer is not failed on a misheard plural."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _find_phrase(tokens: list[str], phrase: str, start: int) -> int | None:
    """Index of the first occurrence of phrase (normalised words, plural -s ignored) in tokens at or after start."""
    words = [_singular(w) for w in phrase.split()]
    singular = [_singular(t) for t in tokens]
    for i in range(start, len(tokens) - len(words) + 1):
        if singular[i : i + len(words)] == words:
            return i
    return None


def check_answer(expected: Expected, transcript: str) -> CheckResult:
    """Judge an answer transcript (digits or number words, any case or punctuation) against the expectation."""
    tokens = normalize(transcript)
    needed = len(expected.items)
    if expected.kind == "last_number":
        numbers = [t for t in tokens if t.isdigit()]
        found = int(bool(numbers) and numbers[-1] in expected.items[0])
        return CheckResult(found == needed, found, needed)
    found, position = 0, 0
    for alternatives in expected.items:
        hits = [(i, len(a.split())) for a in alternatives if (i := _find_phrase(tokens, a, position)) is not None]
        if hits:
            found += 1
            if expected.kind == "in_order":
                index, length = min(hits)
                position = index + length
    return CheckResult(found == needed, found, needed)


# --------------------------------------------------------------------------- phrasings, exchanges, replies


@dataclass(frozen=True)
class Phrasings:
    """Templates of one kind of question, each in exactly one split."""

    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]

    def of(self, split: str) -> tuple[str, ...]:
        if split not in SPLITS:
            raise DomainError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
        return getattr(self, split)

    def all(self) -> tuple[str, ...]:
        return self.train + self.valid + self.test


@dataclass(frozen=True)
class Reply:
    """What the agent answers to an understood question: alternative phrasings (the first is
    the canonical one) and what a correct answer must contain (None: nothing checkable)."""

    answers: tuple[str, ...]
    expected: Expected | None


@dataclass(frozen=True)
class Exchange:
    """One user question (in parts, with possible pauses between them) and the agent's answer."""

    domain: str
    question_parts: tuple[str, ...]
    answer_text: str
    expected: Expected | None
    phrasings: tuple[str, ...]
    """The templates the question came from (one per part), for split bookkeeping."""

    @property
    def question_text(self) -> str:
        return " ".join(self.question_parts)


def _sentence(text: str) -> str:
    """Capitalise the first letter of every sentence, as written text does."""
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m[1] + m[2].upper(), text)


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _exchange(rng: np.random.Generator, domain: str, template: str, question: str, reply: Reply) -> Exchange:
    return Exchange(domain, (_sentence(question),), _sentence(_pick(rng, reply.answers)), reply.expected, (template,))


class Domain(Protocol):
    name: str

    def sample(self, rng: np.random.Generator, split: str) -> Exchange: ...

    def interpret(self, text: str) -> Reply | None:
        """The reply to a normalised utterance (words joined by spaces), or None if it is not this domain's."""
        ...


# --------------------------------------------------------------------------- arithmetic

_OPERATIONS = {
    "plus": (lambda a, b: a + b, "plus"),
    "minus": (lambda a, b: a - b, "minus"),
    "times": (lambda a, b: a * b, "times"),
}

_ARITHMETIC_QUESTIONS = {
    "plus": Phrasings(
        train=("what is {a} plus {b}?", "what's {a} plus {b}?", "how much is {a} plus {b}?", "{a} plus {b}?",
               "could you add {a} and {b} for me?", "add {a} to {b}, please.",
               "what do you get if you add {a} and {b}?", "the sum of {a} and {b}, please.", "{a} and {b} together make what?", "what does {a} plus {b} make?"),
        valid=("what is the sum of {a} and {b}?", "quick one: {a} plus {b}?"),
        test=("tell me the sum of {a} and {b}.", "if I add {a} and {b} together, what do I get?",
              "do you know what {a} plus {b} makes?"),
    ),
    "minus": Phrasings(
        train=("what is {a} minus {b}?", "what's {a} minus {b}?", "how much is {a} minus {b}?", "{a} minus {b}?",
               "subtract {b} from {a}.", "what's {a} take away {b}?", "can you take {b} away from {a}?",
               "the difference between {a} and {b}, please.", "how many are left if you take {b} from {a}?"),
        valid=("what is the difference between {a} and {b}?", "quick one: {a} minus {b}?"),
        test=("if you subtract {b} from {a}, what is left?", "tell me what {a} minus {b} is.",
              "what do you get when you take {b} from {a}?"),
    ),
    "times": Phrasings(
        train=("what is {a} times {b}?", "what's {a} times {b}?", "how much is {a} times {b}?", "{a} times {b}?",
               "multiply {a} by {b}.", "what's {a} multiplied by {b}?", "could you multiply {a} and {b}?",
               "the product of {a} and {b}, please.", "work out {a} times {b} for me."),
        valid=("what is the product of {a} and {b}?", "quick one: {a} times {b}?"),
        test=("tell me the product of {a} and {b}.", "can you work out {a} times {b}?",
              "what do you get if you multiply {a} by {b}?"),
    ),
}

_N = r"(?P<{}>\d+)"
_ARITHMETIC_PATTERNS = {
    "plus": [rf"{_N.format('a')} plus {_N.format('b')}", rf"\badd {_N.format('a')} (?:and|to) {_N.format('b')}",
             rf"\bsum of {_N.format('a')} and {_N.format('b')}"],
    "minus": [rf"{_N.format('a')} (?:minus|take away) {_N.format('b')}",
              rf"\b(?:subtract|take) {_N.format('b')} (?:away )?from {_N.format('a')}",
              rf"\bdifference between {_N.format('a')} and {_N.format('b')}"],
    "times": [rf"{_N.format('a')} (?:times|multiplied by) {_N.format('b')}",
              rf"\bmultiply {_N.format('a')} (?:by|and) {_N.format('b')}",
              rf"\bproduct of {_N.format('a')} and {_N.format('b')}"],
}
_OPERATION_CUES = {
    "plus": r"\b(?:plus|add|adds|added|sum|together)\b",
    "minus": r"\b(?:minus|subtract\w*|take away|difference|less|left)\b",
    "times": r"\b(?:times|multipl\w*|product)\b",
}
# "add A and B together" and "add A and B for me" read as plus; "if I add A and B" likewise.
_ARITHMETIC_ANSWERS = ("{a} {op} {b} is {c}.", "that's {c}.", "the answer is {c}.", "{c}.", "it's {c}.")


class Arithmetic:
    """Add, subtract, multiply whole numbers 0-20 (subtraction never goes below zero)."""

    name = "arithmetic"

    def sample(self, rng: np.random.Generator, split: str) -> Exchange:
        op = _pick(rng, list(_OPERATIONS))
        a, b = (int(x) for x in rng.integers(0, 21, size=2))
        if op == "minus" and a < b:
            a, b = b, a
        template = _pick(rng, _ARITHMETIC_QUESTIONS[op].of(split))
        question = template.format(a=number_words(a), b=number_words(b))
        return _exchange(rng, self.name, template, question, self.reply(op, a, b))

    @staticmethod
    def reply(op: str, a: int, b: int) -> Reply:
        c = _OPERATIONS[op][0](a, b)
        words = {"a": number_words(a), "b": number_words(b), "c": number_words(c), "op": _OPERATIONS[op][1]}
        return Reply(tuple(t.format(**words) for t in _ARITHMETIC_ANSWERS), Expected.of("last_number", str(c)))

    def interpret(self, text: str) -> Reply | None:
        text = _teens_for_tens(text)
        for op, patterns in _ARITHMETIC_PATTERNS.items():
            for pattern in patterns:
                m = re.search(pattern, text)
                if m:
                    a, b = int(m["a"]), int(m["b"])
                    if a <= 20 and b <= 20 and _OPERATIONS[op][0](a, b) >= 0:
                        return self.reply(op, a, b)
        return self._from_cue_words(text)

    def _from_cue_words(self, text: str) -> Reply | None:
        """A question the constructions miss ("the product on 13 and 10"): one operation word and two
        numbers. A difference is the larger less the smaller: the domain never goes below zero."""
        ops = [op for op, cue in _OPERATION_CUES.items() if re.search(cue, text)]
        numbers = [int(n) for n in re.findall(r"\b\d+\b", text)]
        if len(ops) != 1 or len(numbers) != 2 or max(numbers) > 20:
            return None
        a, b = numbers
        if ops[0] == "minus" and a < b:
            a, b = b, a
        return self.reply(ops[0], a, b)


# --------------------------------------------------------------------------- counting

_COUNTING_QUESTIONS = Phrasings(
    train=("count from {a} to {b}.", "please count from {a} to {b}.", "can you count from {a} to {b}?",
           "could you count up from {a} to {b}?", "count from {a} to {b} for me, please.",
           "count the numbers from {a} to {b}.", "count up to {b}, starting at {a}."),
    valid=("count to {b}, starting at {a}.", "I'd like you to count from {a} to {b}."),
    test=("say the numbers from {a} to {b}.", "would you count from {a} up to {b}?", "let's count from {a} to {b}."),
)
_COUNTING_PATTERNS = [
    rf"\bcount (?:up )?from {_N.format('a')} (?:up )?to {_N.format('b')}",
    rf"\bcount (?:up )?to {_N.format('b')} (?:starting|beginning) (?:at|from|with) {_N.format('a')}",
    rf"\bnumbers from {_N.format('a')} (?:up )?to {_N.format('b')}",
    rf"\bfrom {_N.format('a')} (?:up )?(?:to|till|until) {_N.format('b')}",  # "count" misheard: "let's come from"
]
_COUNTING_ANSWERS = ("{seq}.", "sure. {seq}.", "okay. {seq}.")
_COUNT_MIN_STEPS, _COUNT_MAX_STEPS = 3, 12


class Counting:
    """Count from A to B within 0-20, three to twelve steps: long answers, good for interruptions."""

    name = "counting"

    def sample(self, rng: np.random.Generator, split: str) -> Exchange:
        a = int(rng.integers(0, 21 - _COUNT_MIN_STEPS))
        b = int(rng.integers(a + _COUNT_MIN_STEPS, min(20, a + _COUNT_MAX_STEPS) + 1))
        template = _pick(rng, _COUNTING_QUESTIONS.of(split))
        question = template.format(a=number_words(a), b=number_words(b))
        return _exchange(rng, self.name, template, question, self.reply(a, b))

    @staticmethod
    def reply(a: int, b: int) -> Reply:
        seq = ", ".join(number_words(n) for n in range(a, b + 1))
        expected = Expected.of("in_order", *(str(n) for n in range(a, b + 1)))
        return Reply(tuple(t.format(seq=seq) for t in _COUNTING_ANSWERS), expected)

    def interpret(self, text: str) -> Reply | None:
        text = _teens_for_tens(text)
        for pattern in _COUNTING_PATTERNS:
            m = re.search(pattern, text)
            if m:
                a, b = int(m["a"]), int(m["b"])
                if a < b <= 20 and b - a <= 20:
                    return self.reply(a, b)
        return None


# --------------------------------------------------------------------------- repeat after me

_REPEAT_WORDS = (
    "apple", "garden", "yellow", "window", "river", "mountain", "silver", "candle", "orange", "pencil",
    "basket", "forest", "purple", "rabbit", "tiger", "ocean", "castle", "dragon", "summer", "winter",
    "coffee", "jacket", "kitchen", "ladder", "lemon", "market", "needle", "pillow", "rocket", "saddle",
    "table", "violin", "wagon", "zebra", "bottle", "button", "carpet", "doctor", "engine", "feather",
    "guitar", "hammer", "island", "jungle", "kettle", "lizard", "mirror", "napkin", "parrot", "puzzle",
    "quiet", "robot", "spider", "tomato", "umbrella", "village", "walnut", "bright", "green", "happy",
    "little", "gentle", "tiny", "golden", "frozen", "sunny", "heavy", "cloud", "bread", "chair",
    "train", "horse", "stone", "music", "planet", "cookie", "blanket", "dolphin", "monkey", "balloon",
)
_REPEAT_QUESTIONS = Phrasings(
    train=("repeat after me: {words}.", "please repeat after me: {words}.", "say after me: {words}.",
           "repeat these words: {words}.", "can you repeat after me? {words}.", "now say {words} back.",
           "can you repeat this? {words}."),
    valid=("repeat this: {words}.", "listen and repeat after me: {words}."),
    test=("could you say {words} back to me?", "say {words} back to me, please.", "repeat the words {words}."),
)
_REPEAT_PATTERNS = [
    r"\b(?:repeat|say) after me (?P<w>.+)",
    r"\brepeat (?:these|the|this|those|that)(?: words?)? (?P<w>.+)",
    r"\bsay (?P<w>.+?) back\b",
]
_REPEAT_ANSWERS = ("{words}.", "sure. {words}.", "okay: {words}.")
_REPEAT_TRAILERS = ("please",)


class RepeatAfterMe:
    """Repeat two to four words."""

    name = "repeat"

    def sample(self, rng: np.random.Generator, split: str) -> Exchange:
        count = int(rng.integers(2, 5))
        words = " ".join(str(w) for w in rng.choice(_REPEAT_WORDS, size=count, replace=False))
        template = _pick(rng, _REPEAT_QUESTIONS.of(split))
        return _exchange(rng, self.name, template, template.format(words=words), self.reply(words.split()))

    @staticmethod
    def reply(words: list[str]) -> Reply:
        said = " ".join(words)
        return Reply(tuple(t.format(words=said) for t in _REPEAT_ANSWERS), Expected.of("in_order", *words))

    def interpret(self, text: str) -> Reply | None:
        for pattern in _REPEAT_PATTERNS:
            m = re.search(pattern, text)
            if m:
                words = [w for w in m["w"].split() if w not in _REPEAT_TRAILERS]
                if 1 <= len(words) <= 6:
                    return self.reply(words)
        return None


# --------------------------------------------------------------------------- capitals

# (country as said, capital as said, other spellings of the capital a transcript may use, other names of the country)
_CAPITALS = (
    ("France", "Paris", (), ()), ("Germany", "Berlin", (), ()), ("Italy", "Rome", (), ()),
    ("Spain", "Madrid", (), ()), ("Portugal", "Lisbon", (), ()), ("the United Kingdom", "London", (), ("britain", "uk")),
    ("Ireland", "Dublin", (), ()), ("the Netherlands", "Amsterdam", (), ("holland",)),
    ("Belgium", "Brussels", (), ()), ("Switzerland", "Bern", ("berne",), ()), ("Austria", "Vienna", (), ()),
    ("Poland", "Warsaw", (), ()), ("Hungary", "Budapest", (), ()), ("Greece", "Athens", (), ()),
    ("Sweden", "Stockholm", (), ()), ("Norway", "Oslo", (), ()), ("Denmark", "Copenhagen", (), ()),
    ("Finland", "Helsinki", (), ()), ("Russia", "Moscow", (), ()), ("Ukraine", "Kyiv", ("kiev",), ()),
    ("Turkey", "Ankara", (), ()), ("Egypt", "Cairo", (), ()), ("Kenya", "Nairobi", (), ()),
    ("Nigeria", "Abuja", (), ()), ("Morocco", "Rabat", (), ()), ("Ghana", "Accra", (), ()),
    ("Ethiopia", "Addis Ababa", (), ()), ("Japan", "Tokyo", (), ()), ("China", "Beijing", ("peking",), ()),
    ("India", "New Delhi", ("delhi",), ()), ("South Korea", "Seoul", (), ("korea",)), ("Thailand", "Bangkok", (), ()),
    ("Vietnam", "Hanoi", (), ()), ("Indonesia", "Jakarta", (), ()), ("the Philippines", "Manila", (), ()),
    ("Pakistan", "Islamabad", (), ()), ("Iran", "Tehran", (), ()), ("Iraq", "Baghdad", (), ()),
    ("Saudi Arabia", "Riyadh", (), ()), ("Australia", "Canberra", (), ()), ("New Zealand", "Wellington", (), ()),
    ("Canada", "Ottawa", (), ()), ("the United States", "Washington", (), ("america", "usa")),
    ("Mexico", "Mexico City", (), ()), ("Brazil", "Brasilia", (), ()), ("Argentina", "Buenos Aires", (), ()),
    ("Chile", "Santiago", (), ()), ("Peru", "Lima", (), ()), ("Colombia", "Bogota", (), ("columbia",)),
    ("Cuba", "Havana", (), ()),
)
_CAPITAL_QUESTIONS = Phrasings(
    train=("what is the capital of {country}?", "what's the capital of {country}?",
           "do you know the capital of {country}?", "tell me the capital of {country}.",
           "which city is the capital of {country}?", "capital of {country}?", "{country}'s capital, please."),
    valid=("name the capital of {country}.", "what's the capital city of {country}?"),
    test=("which city is {country}'s capital?", "I wonder what the capital of {country} is.",
          "in {country}, what is the capital?"),
)
_CAPITAL_ANSWERS = ("the capital of {country} is {capital}.", "it's {capital}.", "{capital}.",
                    "that would be {capital}.")


def _country_names(entry) -> list[str]:
    country = entry[0].removeprefix("the ")
    return [_norm_text(country)] + [_norm_text(alias) for alias in entry[3]]


_COUNTRY_BY_NAME = {name: entry for entry in _CAPITALS for name in _country_names(entry)}


class Capitals:
    """The capital of one of about fifty well-known countries."""

    name = "capitals"

    def sample(self, rng: np.random.Generator, split: str) -> Exchange:
        entry = _pick(rng, _CAPITALS)
        template = _pick(rng, _CAPITAL_QUESTIONS.of(split))
        return _exchange(rng, self.name, template, template.format(country=entry[0]), self.reply(entry))

    @staticmethod
    def reply(entry) -> Reply:
        country, capital, spellings, _ = entry
        answers = tuple(t.format(country=country, capital=capital) for t in _CAPITAL_ANSWERS)
        return Reply(answers, Expected.of("all", (capital, *spellings)))

    def interpret(self, text: str) -> Reply | None:
        if not re.search(r"\bcapit[ao]l\b", text):  # transcripts often spell it "capitol"
            return None
        entry = _closest_name(text, _COUNTRY_BY_NAME)
        return self.reply(entry) if entry is not None else None


# --------------------------------------------------------------------------- small talk


@dataclass(frozen=True)
class _Intent:
    questions: Phrasings
    patterns: tuple[str, ...]
    answers: tuple[str, ...]
    expected: Expected


_SMALL_TALK = {
    "goodbye": _Intent(
        Phrasings(train=("goodbye!", "bye for now.", "see you later.", "I have to go now, bye.", "I'll see you soon."),
                  valid=("talk to you later.",), test=("okay, bye bye.", "see you soon, goodbye.")),
        (r"\bgood ?bye\b", r"\bbye\b", r"\bsee you\b", r"\btalk to you later\b"),
        ("goodbye! have a nice day.", "bye! talk to you soon.", "see you later, goodbye!"),
        Expected.of("all", ("bye", "goodbye", "see you")),
    ),
    "thanks": _Intent(
        Phrasings(train=("thank you.", "thanks a lot.", "thanks for your help.", "thank you very much.",
                         "I appreciate your help.", "cheers!"),
                  valid=("many thanks.",), test=("I appreciate it.", "cheers, that was helpful.")),
        (r"\bthank(?:s| you)\b", r"\bappreciate\b", r"\bcheers\b"),
        ("you're welcome.", "my pleasure.", "no problem at all."),
        Expected.of("all", ("welcome", "pleasure", "no problem")),
    ),
    "how_are_you": _Intent(
        Phrasings(train=("how are you?", "how are you doing today?", "how's it going?", "how are things?",
                         "are you feeling well?"),
                  valid=("how have you been?",), test=("are you doing well today?", "how are you feeling?")),
        (r"\bhow (?:are|is|have) (?:you|it|things)\b", r"\bare you (?:doing|feeling) well\b"),
        ("I'm doing well, thank you.", "I'm fine, thanks for asking.", "pretty good, thanks."),
        Expected.of("all", ("well", "fine", "good", "great")),
    ),
    "greeting": _Intent(
        Phrasings(train=("hello!", "hi there!", "hey!", "good morning!", "hi, good evening.", "hello, good afternoon."),
                  valid=("good afternoon!",), test=("good evening!", "hey there, hello!")),
        (r"\b(?:hello|hi|hey)\b", r"\bgood (?:morning|afternoon|evening)\b"),
        ("hello! how can I help you?", "hi there! what can I do for you?", "hey! nice to hear from you."),
        Expected.of("all", ("hello", "hi", "hey")),
    ),
}


class SmallTalk:
    """Greetings, how are you, thanks, goodbye; intents are tried goodbye first, greeting last."""

    name = "smalltalk"

    def sample(self, rng: np.random.Generator, split: str) -> Exchange:
        intent = _SMALL_TALK[_pick(rng, list(_SMALL_TALK))]
        template = _pick(rng, intent.questions.of(split))
        return _exchange(rng, self.name, template, template, Reply(intent.answers, intent.expected))

    def interpret(self, text: str) -> Reply | None:
        for intent in _SMALL_TALK.values():
            if any(re.search(p, text) for p in intent.patterns):
                return Reply(intent.answers, intent.expected)
        return None


# --------------------------------------------------------------------------- tell me about X

# (topic as said, answer sentences, words a correct answer must contain)
_TOPICS = (
    ("the moon", "The moon circles the earth about once a month. It has no air and no water. "
     "Its light is sunlight bouncing off its dusty surface.", ("earth", "month")),
    ("the sun", "The sun is a star at the centre of our solar system. It is a huge ball of hot gas. "
     "Its light takes about eight minutes to reach us.", ("star", "gas")),
    ("elephants", "Elephants are the largest animals that live on land. They use their long trunks to drink "
     "and to pick things up. They live in families led by the oldest female.", ("largest", "trunks")),
    ("bees", "Bees collect nectar from flowers and turn it into honey. A hive can hold tens of thousands of bees. "
     "They help plants grow by carrying pollen.", ("flowers", "honey")),
    ("volcanoes", "A volcano is an opening in the ground where melted rock comes out. "
     "When it erupts, lava, ash and gas pour out. Some volcanoes sleep for hundreds of years.", ("rock", "lava")),
    ("rain", "Rain falls when tiny water droplets in clouds join into drops that are too heavy to float. "
     "Most of it comes from water that evaporated from the sea.", ("clouds", "water")),
    ("penguins", "Penguins are birds that cannot fly, but they swim very well. "
     "Most of them live in the cold south. They eat fish and keep their eggs warm on their feet.", ("birds", "swim")),
    ("the ocean", "The ocean covers most of the surface of the earth. Its water is salty. "
     "It is home to whales, fish and countless tiny creatures.", ("earth", "salty")),
    ("chess", "Chess is a board game for two players. Each side has sixteen pieces, and the goal is to trap "
     "the other king. It was first played in India many centuries ago.", ("board", "king")),
    ("coffee", "Coffee is made from the roasted seeds of a tropical plant. It contains caffeine, which keeps "
     "people awake. Brazil grows more of it than any other country.", ("seeds", "caffeine")),
    ("trees", "Trees make their own food from sunlight, water and air. Their roots hold the soil in place. "
     "Some trees live for thousands of years.", ("sunlight", "roots")),
    ("the desert", "A desert is a place where very little rain falls. Days can be hot and nights cold. "
     "Camels can walk for days there without drinking.", ("rain", "camels")),
    ("dolphins", "Dolphins are clever mammals that live in the sea. They breathe air through a hole on top of "
     "their heads. They talk to each other with clicks and whistles.", ("mammals", "air")),
    ("the heart", "The heart is a muscle that pumps blood around the body. It beats about seventy times "
     "a minute. It never rests, even while you sleep.", ("muscle", "blood")),
)
_TOPIC_QUESTIONS = Phrasings(
    train=("tell me about {topic}.", "what can you tell me about {topic}?", "tell me something about {topic}.",
           "I'd like to hear about {topic}.", "can you tell me a bit about {topic}?",
           "describe {topic} in a few words.", "can you explain {topic}?", "let's talk about {topic}."),
    valid=("what do you know about {topic}?", "give me a few facts about {topic}."),
    test=("could you describe {topic} for me?", "talk to me about {topic}.", "explain {topic} to me, please."),
)
_TOPIC_TRIGGER = r"\b(?:about|describ\w*|explain\w*)\b"
_TOPIC_OPENERS = ("", "sure. ", "happy to. ")


_TOPIC_BY_NAME = {_norm_text(entry[0].removeprefix("the ")): entry for entry in _TOPICS}


class TellMeAbout:
    """A few sentences on one of a small table of topics: long answers, good for backchannels and barge-ins."""

    name = "about"

    def sample(self, rng: np.random.Generator, split: str) -> Exchange:
        entry = _pick(rng, _TOPICS)
        template = _pick(rng, _TOPIC_QUESTIONS.of(split))
        return _exchange(rng, self.name, template, template.format(topic=entry[0]), self.reply(entry))

    @staticmethod
    def reply(entry) -> Reply:
        _, sentences, keys = entry
        return Reply(tuple(opener + sentences for opener in _TOPIC_OPENERS), Expected.of("all", *keys))

    def interpret(self, text: str) -> Reply | None:
        if not re.search(_TOPIC_TRIGGER, text):
            return None
        entry = _closest_name(text, _TOPIC_BY_NAME)
        return self.reply(entry) if entry is not None else None


# --------------------------------------------------------------------------- user narratives

_NARRATIVE_OPENINGS = Phrasings(
    train=("so, this morning I went to the market.", "you know, yesterday I finally cleaned my garage.",
           "let me tell you what happened on my way home.", "so last weekend we drove to the seaside.",
           "guess what, I tried to bake bread last night."),
    valid=("so, today started in a strange way.",),
    test=("okay, so my sister came to visit on Sunday.", "right, so I took the dog for a long walk."),
)
_NARRATIVE_MIDDLES = Phrasings(
    train=("first I had to wait ages for the bus", "then it started to rain really hard",
           "my neighbour came over to help me", "we talked for a long time", "I forgot my keys in the car",
           "the shop had run out of almost everything", "a little dog followed me down the street",
           "I found an old photo of my grandmother", "the traffic was terrible", "we ended up laughing a lot",
           "I had to go back home twice", "the weather turned warm in the afternoon"),
    valid=("the lights went out for an hour", "my phone battery died halfway"),
    test=("the train was late again", "I bumped into an old friend from school", "we got completely lost"),
)
_NARRATIVE_CLOSINGS = Phrasings(
    train=("anyway, that was my day.", "so yes, that's my story.", "and that was pretty much it.",
           "all in all, not a bad day."),
    valid=("so, that's what happened.",),
    test=("well, that's the whole story.", "and that was my weekend."),
)
_NARRATIVE_ANSWERS = ("that sounds like quite a day.", "thanks for telling me.", "wow, what a story.",
                      "that sounds nice.")


class Narrative:
    """A long user turn in parts, with pauses between them, during which the agent only backchannels;
    after the closing part the agent acknowledges. Nothing in it is checkable."""

    name = "narrative"

    def sample(self, rng: np.random.Generator, split: str) -> Exchange:
        opening = _pick(rng, _NARRATIVE_OPENINGS.of(split))
        middles_pool = _NARRATIVE_MIDDLES.of(split)
        count = min(len(middles_pool), int(rng.integers(2, 5)))
        middles = [str(m) for m in rng.choice(middles_pool, size=count, replace=False)]
        closing = _pick(rng, _NARRATIVE_CLOSINGS.of(split))
        parts = (opening, *(m + "." for m in middles), closing)
        answer = _sentence(_pick(rng, _NARRATIVE_ANSWERS))
        return Exchange(self.name, tuple(_sentence(p) for p in parts), answer, None, (opening, *middles, closing))

    def interpret(self, text: str) -> Reply | None:
        padded = f" {text} "
        if any(f" {_norm_text(c)} " in padded for c in _NARRATIVE_CLOSINGS.all()):
            return Reply(_NARRATIVE_ANSWERS, None)
        return None


# --------------------------------------------------------------------------- backchannels

BACKCHANNELS = ("mm-hmm", "yeah", "right", "okay", "uh-huh", "I see")
"""What a listener says to show it follows without taking the turn (agent during user narratives,
user during long agent answers)."""


# --------------------------------------------------------------------------- the registry, sampling, responding

DOMAINS: dict[str, Domain] = {
    d.name: d for d in (Arithmetic(), Counting(), RepeatAfterMe(), Capitals(), SmallTalk(), TellMeAbout(), Narrative())
}
"""Every domain by name, in the order the responder tries them (most specific constructions first)."""


def sample_exchange(rng: np.random.Generator, domain: str, split: str) -> Exchange:
    """A random exchange of one domain, phrased with that split's question templates."""
    if domain not in DOMAINS:
        raise DomainError(f"unknown domain {domain!r} (known: {', '.join(DOMAINS)})")
    if split not in SPLITS:
        raise DomainError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    return DOMAINS[domain].sample(rng, split)


def understand(text: str) -> Reply | None:
    """The reply a transcript calls for, from the first domain that recognises it."""
    normalized = _norm_text(text)
    for domain in DOMAINS.values():
        reply = domain.interpret(normalized)
        if reply is not None:
            return reply
    return None


def recognition_prompt() -> str:
    """Text that primes a recogniser with the domains' vocabulary (Whisper's initial prompt): questions
    with digits, the countries and the topics (`bench/bench_domain_hearing.py` measures what it adds).
    Its form matters: with number words in it Whisper spells numbers and mishears them ("free plus
    for")."""
    countries = ", ".join(entry[0].removeprefix("the ") for entry in _CAPITALS)
    topics = ", ".join(entry[0] for entry in _TOPICS)
    return f"What is 8 plus 19? Count from 9 to 17. What's the capital of {countries}? Tell me about {topics}."


class DomainResponder:
    """Answers user utterances in-domain, for the cascaded baseline agent.

    With no rng it always gives the canonical (first) answer phrasing, so its
    output is reproducible; with an rng it varies phrasings like the data.
    """

    def __init__(self, rng: np.random.Generator | None = None):
        self.rng = rng
        self.recognition_prompt = recognition_prompt()

    def respond(self, text: str) -> str | None:
        """The in-domain answer to a transcript, or None when it has nothing to say."""
        reply = understand(text)
        if reply is None:
            return None
        answer = reply.answers[0] if self.rng is None else _pick(self.rng, reply.answers)
        return _sentence(answer)


# --------------------------------------------------------------------------- voices

AGENT_VOICES = (Voice("en-us", None, 150, 45),)
"""The agent's default persona: one steady voice, so the model learns one way to speak. At 150 words
per minute the benches' judge (Whisper base) passes 85% of correct answers, against 76% at 165
(`bench/bench_domain_hearing.py`; the codec runs of sessions 1-3 used 165)."""

NATURAL_AGENT_VOICE = Voice("joe", engine="piper")
"""Piper's en_US-joe-medium (audio/piper_tts.py): the natural persona DESIGN.md prefers once the codec
carries it intelligibly. The codec trains on both personas, and bench/bench_codec.py measures both."""

USER_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-x-gbclan")
USER_VOICE_VARIANTS = {
    "train": ("m1", "m2", "m4", "m5", "m7", "m8", "f3", "Annie", "klatt", "klatt2", "klatt3", "rob", "robert",
              "edward", "benjamin", "grandpa", "victor", "croak", "adam", "pedro", "Hugo", "caleb", "Henrique",
              "zac", "quincy", "Alex", "Mike", "Denis", "Diogo", "steph", "pablo", "john", "miguel", "aunty",
              "max", "Andrea", "david", "Mario", "antonio", "marcelo"),
    "valid": ("m6", "f2", "sandro", "michel", "Nguyen"),
    "test": ("m3", "f5", "Gene", "iven", "anika"),
}
"""espeak-ng voice variants (timbres) for the user side, disjoint between splits. Accents and variants
that Whisper cannot follow (word error rate above 0.40 in `bench/bench_voice_screen.py`, docs/data.md)
are left out: a caller the recogniser cannot understand tests the recogniser, not the agent."""
USER_SPEED_RANGE = (140, 200)
USER_PITCH_RANGE = (30, 70)


def sample_user_voice(rng: np.random.Generator, split: str) -> Voice:
    """A user voice of a split: any accent, one of the split's variants, a random speed and pitch."""
    if split not in SPLITS:
        raise DomainError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    accent = _pick(rng, USER_ACCENTS)
    variant = _pick(rng, USER_VOICE_VARIANTS[split])
    speed = int(rng.integers(USER_SPEED_RANGE[0], USER_SPEED_RANGE[1] + 1))
    pitch = int(rng.integers(USER_PITCH_RANGE[0], USER_PITCH_RANGE[1] + 1))
    return Voice(accent, variant, speed, pitch)

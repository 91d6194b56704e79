"""Words of a text as the answer engine and the knowledge search compare them: normalised,
stemmed, content only (the responder's grounding check and evidence ranking, and the
memory service's lexical index of knowledge chunks use the same words).

Two texts "say the same thing" for the engine when they share content words (nouns, verbs,
adjectives, numbers), compared by their Snowball stems after a dictionary lemmatizer
(simplemma) has undone irregular forms: "returns", "returned" and "returning" are one word,
and so are "wrote" and "writing", "paid", "pay" and "payment" ("-ment" and "-ery" nouns
are their verbs: "delivery" is "deliver"). A hyphenated word also counts as its
parts ("next-day" is "next-day", "next" and "day"). Function words ("the", "can", "you")
carry no claim and are left out; negations ("not", "never", "no", "cannot") are kept apart,
because they flip a claim.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import simplemma
import snowballstemmer

_STEMMER = snowballstemmer.stemmer("english")
_APOSTROPHES = dict.fromkeys(map(ord, "'\u2018\u2019\u02bc\u0060\u00b4"), "'")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?(?:[-.][a-z0-9]+)*")

# Contractions that negate ("can't" -> not) and the plain negations.
NEGATIONS = frozenset(
    {
        "not", "no", "never", "cannot", "nor", "neither", "none", "nothing", "without",
        "can't", "don't", "doesn't", "didn't", "won't", "isn't", "aren't", "wasn't",
        "weren't", "shouldn't", "wouldn't", "couldn't", "haven't", "hasn't", "mustn't",
        "cant", "dont", "doesnt", "didnt", "wont", "isnt", "arent",
    }
)  # fmt: skip

# Function words, question words, and conversational filler: they carry no claim.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "else",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "from",
        "with",
        "about",
        "as",
        "into",
        "onto",
        "over",
        "under",
        "up",
        "down",
        "out",
        "off",
        "than",
        "too",
        "very",
        "so",
        "such",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "i",
        "me",
        "my",
        "mine",
        "myself",
        "we",
        "us",
        "our",
        "ours",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "is",
        "am",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "also",
        "just",
        "only",
        "still",
        "even",
        "yet",
        "already",
        "again",
        "please",
        "thanks",
        "thank",
        "hi",
        "hello",
        "hey",
        "ok",
        "okay",
        "yes",
        "yeah",
        "sure",
        "any",
        "some",
        "all",
        "each",
        "every",
        "both",
        "either",
        "other",
        "another",
        "more",
        "most",
        "few",
        "many",
        "much",
        "long",
        "now",
        "once",
        "own",
        "try",
        "wonder",
        "guess",
        "maybe",
        "perhaps",
        "anyway",
        "since",
        "until",
        "lot",
        "lots",
        "get",
        "got",
        "let",
        "know",
        "tell",
        "want",
        "need",
        "like",
        "would",
        "i'd",
        "i'm",
        "im",
        "you're",
        "youre",
        "it's",
        "its",
        "we're",
        "were",
        "there's",
        "theres",
        "what's",
        "whats",
        "let's",
        "lets",
        "able",
        "one",
        "ones",
        "thing",
        "things",
        "way",
        "someone",
        "something",
        "anyone",
        "anything",
        "everyone",
        "everything",
        "hmm",
        "um",
        "well",
        "really",
        "actually",
        "however",
        "also",
        "s",
        "t",
        # Chat shorthand and intensifiers: "do u guys take discover", "pretty sure".
        "u",
        "ur",
        "r",
        "pls",
        "plz",
        "thx",
        "ty",
        "lol",
        "btw",
        "tbh",
        "idk",
        "guys",
        "guy",
        "folks",
        "gonna",
        "wanna",
        "gotta",
        "kinda",
        "sorta",
        "pretty",
        "quite",
        "super",
        "totally",
        "basically",
        "literally",
        "honestly",
        "specifically",
        "exactly",
        "probably",
        # How often or how nearly: "how long does shipping usually take?".
        "usually",
        "typically",
        "normally",
        "generally",
        "roughly",
        "approximately",
    ]
)

# Abbreviations customers write for what help pages spell out: each is the words it stands
# for ("ship to the UK" finds "the United Kingdom", and a page's "UK" is those words too).
# Only unambiguous ones ("us" is a pronoun; "US" is lower-cased like it).
ABBREVIATIONS = {
    "uk": "united kingdom",
    "u.k": "united kingdom",
    "usa": "united states",
    "u.s.a": "united states",
    "u.s": "united states",
    "eu": "european union",
    "amex": "american express",
}

# A contraction of a function word ("i've", "they're", "we'll", "you'd") is one too.
_CONTRACTED = re.compile(r"^([a-z]+)'(?:ve|re|ll|d|m|s)$")

# Words a reply may use without a source saying them: they state nothing about the store.
DISCOURSE = frozenset(
    [
        "help",
        "happy",
        "glad",
        "sorry",
        "sure",
        "question",
        "questions",
        "answer",
        "information",
        "info",
        "page",
        "pages",
        "according",
        "source",
        "sources",
        "see",
        "find",
        "found",
        "note",
        "noted",
        "mention",
        "mentioned",
        "say",
        "says",
        "said",
        "customer",
        "customers",
        "ask",
        "asked",
        "asking",
        "contact",
        "reach",
        "write",
        "writing",
        "email",
        "team",
        "support",
    ]
)


def normalize(text: str) -> str:
    """NFKC, lower case, one kind of apostrophe."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)


def tokens(text: str) -> list[str]:
    """The words and numbers of `text`, lower case ("e-books" and "2-3" stay whole)."""
    return _TOKEN.findall(normalize(text))


@lru_cache(maxsize=50_000)
def lemma(word: str) -> str:
    """The dictionary form of a word ("wrote" -> "write", "getting" -> "get")."""
    if not word.isalpha():
        return word
    return str(simplemma.lemmatize(word, lang="en")).casefold()


@lru_cache(maxsize=50_000)
def stem(word: str) -> str:
    """The Snowball stem of a word's lemma ("wrote" -> "write"); hyphenated words are stemmed
    as one ("e-book" -> "ebook")."""
    if word[:1].isdigit():
        return word
    found = str(_STEMMER.stemWord(lemma(word).replace("-", "")))
    # Snowball keeps some nouns apart from their verbs; a support question mixes them
    # ("can I pay" / "payment methods", "deliver" / "delivery", "ship" / "shipment").
    for suffix in _NOUN_SUFFIXES:
        if found.endswith(suffix) and len(found) - len(suffix) >= 3:
            return found[: -len(suffix)]
    return found


# Noun endings Snowball leaves on a stem ("payment", "deliveri").
_NOUN_SUFFIXES = ("ment", "eri")


def _function_word(word: str) -> bool:
    """A function word or filler, in any form ("getting" is "get", "they're" is "they")."""
    if word in STOPWORDS or lemma(word) in STOPWORDS:
        return True
    contracted = _CONTRACTED.match(word)
    return contracted is not None and contracted.group(1) in STOPWORDS


def _parts(word: str) -> list[str]:
    """The parts of a hyphenated word that carry meaning ("next-day" -> next, day)."""
    if "-" not in word or word[:1].isdigit():
        return []
    return [p for p in word.split("-") if len(p) > 1 and p not in STOPWORDS and p.isalpha()]


def is_negation(word: str) -> bool:
    return word in NEGATIONS or word.endswith("n't")


def content_words(text: str, *, drop: frozenset[str] = frozenset()) -> list[str]:
    """The stems of the content words of `text` in order, repeats kept (no function words,
    no negations); a hyphenated word is followed by its parts."""
    found: list[str] = []
    for word in tokens(text):
        if _function_word(word) or is_negation(word) or word in drop:
            continue
        if word in ABBREVIATIONS:
            found.extend(stem(part) for part in ABBREVIATIONS[word].split())
            continue
        found.append(stem(word))
        found.extend(stem(part) for part in _parts(word))
    return found


def content_stems(text: str, *, drop: frozenset[str] = frozenset()) -> set[str]:
    """The stems of the content words of `text` (no function words, no negations)."""
    return set(content_words(text, drop=drop))


def negated(text: str) -> bool:
    """True when `text` contains a negation (a leading "no," answer word does not count)."""
    words = tokens(text)
    if words and words[0] in {"no", "yes"}:
        words = words[1:]
    return any(is_negation(word) for word in words)

"""Streaming only what passed a check: generated text goes out sentence by sentence.

`SentenceGuard` sits between the model's token stream and the client. Text of a sentence
that might make a claim is held until the sentence ends, then checked: it goes out if it
passes; if it fails, the generation stops and nothing of that sentence is ever sent. So
an answer is never streamed and then retracted. With `hold_all` every sentence is held
(answers about the store); otherwise only a sentence in which a trigger appears (a digit,
an amount, an address, "we"/"our", a word about the store; not a number the user wrote) is
held from there on and the rest streams word by word (general requests, where time to first
token matters). A fragment of a trigger word may go out before the word is whole; it
states nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tidings.common.words import stem, tokens

Check = Callable[[str], list[str]]

_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
_TRIGGER_CHARS = re.compile(r"[$€£%@]|https?:|www\.")
_NUMBER = re.compile(r"\d+")
# The store's voice ("we ship ..."). "I" is no trigger by itself (models start half their
# sentences with it); "I accept ..." is held at its first store word ("cards").
STORE_PLURAL_VOICE = frozenset({"we", "our", "ours", "us", "we're", "we'll", "we've"})


class Blocked(Exception):
    """A sentence failed the check; `problems` says why (for logs and metrics)."""

    def __init__(self, sentence: str, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.sentence = sentence
        self.problems = problems


class SentenceGuard:
    """Feeds on generated text, returns what may be sent now; raises `Blocked`."""

    def __init__(
        self,
        check: Check,
        *,
        hold_all: bool,
        store_words: frozenset[str] = frozenset(),
        question: str = "",
    ) -> None:
        """`question`: the user's message; numbers it contains are no trigger (the model
        may repeat them)."""
        self._check = check
        self._hold_all = hold_all
        self._store_stems = frozenset(stem(w) for w in store_words)
        self._asked_numbers = frozenset(_NUMBER.findall(question))
        self._pending = ""  # the current sentence, not yet ended
        self._sent = 0  # characters of `_pending` already sent (unheld sentences)
        self._held = hold_all
        self.passed = ""  # everything that went out
        self.cut_mid_sentence = False

    def feed(self, text: str) -> str:
        """Add generated text; the part that may be sent now."""
        self._pending += text
        out: list[str] = []
        while True:
            end = _END.search(self._pending)
            if end is None:
                break
            sentence = self._pending[: end.end()]
            self._pending = self._pending[end.end() :]
            out.append(self._release(sentence))
        out.append(self._stream_partial())
        released = "".join(out)
        self.passed += released
        return released

    def finish(self) -> str:
        """The end of the generation: the last sentence, if it passes."""
        sentence, self._pending = self._pending, ""
        released = self._release(sentence) if sentence.strip() else sentence[self._sent :]
        self._sent = 0
        self.passed += released
        return released

    def _release(self, sentence: str) -> str:
        held = self._held or self._triggered(sentence)
        sent, self._sent, self._held = self._sent, 0, self._hold_all
        if held and sentence.strip():
            problems = self._check(sentence.strip())
            if problems:
                # The words before the trigger went out already: the answer ends mid-sentence.
                self.cut_mid_sentence = sent > 0
                raise Blocked(sentence.strip(), problems)
        return sentence[sent:]

    def _stream_partial(self) -> str:
        if self._held:
            return ""
        if self._triggered(self._pending):
            self._held = True
            return ""
        # Text goes out as it comes. A fragment of a trigger word ("W" of "We") may go out
        # before the word is whole and held: a fragment states nothing. A number may still
        # grow ("1" -> "19"), so the last word is kept back while it has a digit.
        cut = self._pending.rfind(" ")
        if not any(c.isdigit() for c in self._pending[cut + 1 :]):
            cut = len(self._pending)
        if cut <= self._sent:
            return ""
        out = self._pending[self._sent : cut]
        self._sent = cut
        return out

    def _triggered(self, text: str) -> bool:
        if _TRIGGER_CHARS.search(text):
            return True
        for found in _NUMBER.finditer(text):
            number = found.group(0)
            unfinished = found.end() == len(text)
            if number not in self._asked_numbers and not (
                unfinished and any(a.startswith(number) for a in self._asked_numbers)
            ):
                return True
        words = tokens(text)
        if STORE_PLURAL_VOICE & set(words):
            return True
        return any(stem(w) in self._store_stems for w in words)

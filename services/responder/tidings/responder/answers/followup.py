"""What to look up for a message: follow-ups with their question, and a message's questions.

- A short message that continues the previous question ("and ...", "what about ...", "how
  about ...", or one that refers back with "it", "that", "them") is looked up together with
  the previous user message: "And to Japan?" after "Do you ship to Canada?".
- A message that wraps its questions in other sentences ("I'm in Chicago. Do I pay for the
  return?", or an injection attempt around a real question) is looked up by its questions
  alone when the whole message finds no answer (`question_focus`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tidings.common.sentences import split_sentences
from tidings.common.words import content_stems, tokens

_CONTINUATION = re.compile(
    r"^\s*(?:(?:ok|okay|so|hmm|right|thanks|great)\W+)?(?:and|or|also|but|then|plus|even|"
    r"what about|how about|same for|what if|in that case|for|to|with)\b",
    re.IGNORECASE,
)
_BACK_REFERENCES = frozenset({"it", "that", "this", "them", "those", "these", "they", "there"})
_MAX_WORDS = 12
# A longer message still follows up when its last word points back ("I live in Canada
# though, do I have to pay the postage for that?").
_MAX_WORDS_POINTING_BACK = 20


def is_followup(question: str) -> bool:
    """True when `question` only makes sense after the previous one."""
    words = tokens(question)
    if not words or len(words) > _MAX_WORDS_POINTING_BACK:
        return False
    if words[-1] in _BACK_REFERENCES - {"there"}:
        return True
    if len(words) > _MAX_WORDS:
        return False
    if _CONTINUATION.match(question):
        return True
    # "Is it free?", "How much is that?": few content words and a word pointing back.
    return len(content_stems(question)) <= 3 and bool(_BACK_REFERENCES & set(words))


def with_previous(question: str, previous_questions: Sequence[str]) -> str:
    """The question to look up: the previous user message and this one, when it follows up."""
    if not previous_questions or not is_followup(question):
        return question
    return f"{previous_questions[-1].strip()} {question.strip()}"


_MARKUP = re.compile(r"<!--.*?-->|<[^>]{0,200}>", re.DOTALL)


def question_focus(message: str) -> str | None:
    """The message's questions alone, without markup, when it has other sentences too."""
    cleaned = _MARKUP.sub(" ", message)
    sentences = split_sentences(cleaned)
    questions = [s for s in sentences if s.rstrip().endswith("?")]
    if not questions or (len(questions) == len(sentences) and cleaned.strip() == message.strip()):
        return None
    return " ".join(questions)

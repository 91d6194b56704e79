"""The bookstore FAQ on a labelled set of real phrasings, and its reload on SIGHUP."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tidings.responder.faq import FaqStore, load_faq
from tidings.responder.faq.quality import Case, evaluate

LABELLED = Path(__file__).with_name("faq_labelled.yaml")


def labelled_cases() -> list[Case]:
    return [Case(c["text"], c["intent"]) for c in yaml.safe_load(LABELLED.read_text())]


def test_the_labelled_set_is_big_and_covers_every_intent_and_the_llm() -> None:
    cases = labelled_cases()
    assert len(cases) >= 60
    intents = {intent.id for intent in load_faq().intents}
    assert {c.intent for c in cases} == intents | {None}


def test_faq_precision_is_at_least_95_percent(capsys: pytest.CaptureFixture[str]) -> None:
    scores = evaluate(load_faq(), labelled_cases())
    with capsys.disabled():
        print(
            f"\nFAQ on {scores.cases} labelled phrasings: precision {scores.precision:.3f}, "
            f"recall {scores.recall:.3f}; mistakes: {scores.mistakes}"
        )
    assert scores.precision >= 0.95, scores.mistakes
    # Recall is reported; a floor keeps a broken matcher from passing.
    assert scores.recall >= 0.8, scores.mistakes


def test_a_matcher_that_answers_everything_fails_the_precision_bar() -> None:
    class Always:
        def match(self, text: str) -> object:
            return load_faq().match("What is your return policy?")

    scores = evaluate(Always(), labelled_cases())  # type: ignore[arg-type]
    assert scores.precision < 0.5


FAQ = "fallback: Ask us.\nintents:\n  - {{id: hours, answer: {answer}, phrases: [opening hours]}}\n"
FAQ_V1 = FAQ.format(answer="Nine to five.")
FAQ_V2 = FAQ.format(answer="Eight to six.")


def test_reload_swaps_in_a_valid_file_and_keeps_the_old_faq_on_a_broken_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text(FAQ_V1)
    store = FaqStore(path)
    assert store.matcher.match("what are your opening hours").answer == "Nine to five."  # type: ignore[union-attr]
    path.write_text(FAQ_V2)
    assert store.reload() is True
    assert store.matcher.match("opening hours?").answer == "Eight to six."  # type: ignore[union-attr]
    path.write_text("intents: [this is: not valid")
    assert store.reload() is False
    assert store.matcher.match("opening hours?").answer == "Eight to six."  # type: ignore[union-attr]
    path.unlink()
    assert store.reload() is False
    assert store.matcher.match("opening hours?") is not None

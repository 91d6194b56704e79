"""Load FAQ intents from YAML: the packaged bookstore FAQ or a file named by RESPONDER_FAQ_PATH."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tidings.responder.faq.matcher import FaqMatcher, Intent

PACKAGED_FAQ = "bookstore.yaml"


class FaqError(ValueError):
    """The FAQ file cannot be used; the message names the file and the problem."""


class IntentSpec(BaseModel):
    """One intent as written in the YAML file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Stable name, used in logs and metrics.")
    answer: str = Field(min_length=1, description="The canned answer text.")
    phrases: list[str] = Field(default_factory=list, description="Whole-word phrases.")
    questions: list[str] = Field(
        default_factory=list,
        description="Questions this answer answers in full; the answer engine compares a "
        "message with them by meaning.",
    )
    patterns: list[str] = Field(
        default_factory=list, description="Regular expressions searched in normalised text."
    )
    whole_message: bool = Field(
        default=False, description="Answer only when the message is just these phrases."
    )
    filler: list[str] = Field(
        default_factory=list, description="Words allowed around a whole-message phrase."
    )

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid pattern {pattern!r}: {exc}") from exc
        return patterns


class FaqFile(BaseModel):
    """The whole YAML document."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(default=1, description="Format version; 1 is the only one.")
    fallback: str = Field(min_length=1, description="Answer when nothing else can answer.")
    intents: list[IntentSpec] = Field(min_length=1)


def parse_faq(text: str, *, origin: str = "<string>") -> FaqMatcher:
    """Build a matcher from YAML text; raises `FaqError` naming `origin` when it is invalid."""
    try:
        document = FaqFile.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise FaqError(f"FAQ file {origin} is invalid: {exc}") from exc
    if document.version != 1:
        raise FaqError(f"FAQ file {origin}: unsupported version {document.version}")
    intents = [
        Intent.build(
            spec.id,
            spec.answer,
            phrases=spec.phrases,
            questions=spec.questions,
            patterns=spec.patterns,
            whole_message=spec.whole_message,
            filler=spec.filler,
        )
        for spec in document.intents
    ]
    try:
        return FaqMatcher(intents, fallback=document.fallback)
    except ValueError as exc:
        raise FaqError(f"FAQ file {origin}: {exc}") from exc


def load_faq(path: Path | None = None) -> FaqMatcher:
    """The FAQ at `path`, or the bookstore FAQ shipped with the package."""
    if path is not None:
        try:
            return parse_faq(path.read_text(encoding="utf-8"), origin=str(path))
        except OSError as exc:
            raise FaqError(f"cannot read FAQ file {path}: {exc}") from exc
    packaged = resources.files("tidings.responder.faq").joinpath(PACKAGED_FAQ)
    return parse_faq(packaged.read_text(encoding="utf-8"), origin=f"(packaged) {PACKAGED_FAQ}")

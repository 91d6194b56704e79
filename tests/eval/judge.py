"""The answer-quality judge of `make eval`: automatic, reproducible, independent of the bot.

Pure functions over the labelled cases (tests/eval/questions.yaml), the `done` (or `error`)
event of each answer, and the reference material the bot may state facts from: the FAQ
(services/responder/tidings/responder/faq/bookstore.yaml) and the knowledge-base pages
(services/memory/tidings/memory/sample_kb/*.md), both read as plain files. Nothing here
imports the responder: the judge must not share the code it grades.

- `extract_facts` / `invented_facts`: the checkable facts of an answer (money, percentages,
  numbers and ranges, times, dates, e-mail addresses, URLs and domains, phone numbers) and
  those not found in the text the answer may draw on.
- `allowed_text`: that text for one answer: the question, its history, every FAQ answer and
  the fallback, and the whole of every knowledge page the answer cites in `sources`.
- `judge_case`: the verdict for one case, by class; `compute_metrics`: the figures.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
FAQ_PATH = ROOT / "services/responder/tidings/responder/faq/bookstore.yaml"
KB_DIR = ROOT / "services/memory/tidings/memory/sample_kb"

CLASSES = (
    "answerable",
    "followup",
    "canned",
    "unanswerable",
    "chitchat",
    "adversarial",
    "store",
)

# ---------------------------------------------------------------------------------------
# Text normalisation
# ---------------------------------------------------------------------------------------

# Hyphens, dashes and minus signs all become "-": "5-7" with an en dash is "5-7".
_DASHES = dict.fromkeys(
    map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-"
)
_QUOTES = {ord("\u2018"): "'", ord("\u2019"): "'", ord("\u201c"): '"', ord("\u201d"): '"'}
# Markdown list markers at the start of a line ("1. ", "2) ") and citation markers ("[1]")
# are layout, not facts.
_LIST_MARKER = re.compile(r"(?m)^[ \t]*(?:[-*+][ \t]+)?\d{1,2}[.)](?=[ \t])")
_CITATION_MARKER = re.compile(r"\[\d{1,2}\]")


def normalise_text(text: str) -> str:
    """NFKC, one kind of dash and quote, no Markdown emphasis, single spaces, case-folded."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES).translate(_QUOTES)
    # Emphasis marks go; a `*` between two numbers is multiplication ("17*23" is not 1723).
    text = re.sub(r"`|(?<!\d)\*+|\*+(?!\d)", "", text)
    return re.sub(r"\s+", " ", text).strip().casefold()


# ---------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------

_NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_TLDS = (
    "com|org|net|io|co|us|ca|uk|eu|de|fr|au|nz|jp|example|info|biz|edu|gov|app|dev|shop|store|ai"
)
_URL_CHARS = r"[^\s<>()\[\]\"'`]"
# One alternation, scanned left to right: at each position the first alternative that
# matches wins, so "$4.99" is money (not the number 4.99 after a "$") and "2 p.m." a time.
_FACT = re.compile(
    rf"""
    (?P<url>(?:https?://|www\.){_URL_CHARS}+)
  | (?P<email>[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+)
  | (?P<domain>(?<![\w@.-])(?:[a-z0-9-]+\.)+(?:{_TLDS})(?![\w-])(?:/{_URL_CHARS}*)?)
  | (?P<phone>(?<![\w+])(?:\+\d{{1,3}}[\s.-]?|1[\s.-])?(?:\(\d{{3}}\)\s?|\d{{3}}[\s.-])
        \d{{3}}[\s.-]\d{{4}}(?!\d))
  | (?P<date>(?<!\w)(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?)(?![\d/]))
  | (?P<time>(?<!\w)\d{{1,2}}(?::\d{{2}})?\s?(?:a\.m\.?|p\.m\.?|am|pm)(?![a-z])
        | (?<![\w:])\d{{1,2}}:\d{{2}}(?![\d:]))
  | (?P<money>(?:(?<![a-z])(?:us|ca|c|a|au|nz)?\$|(?<![a-z])(?:usd|cad|aud|nzd|eur|gbp)\s?\$?
        |[€£])\s?{_NUM}
        | (?<!\w){_NUM}\s?(?:dollars?|usd|cad|aud|nzd|eur|euros?|gbp|[€£])(?![a-z]))
  | (?P<percent>(?<!\w){_NUM}\s?(?:%|percent\b|per\ cent\b))
  | (?P<range>(?<!\w)(?:between\s{_NUM}\s(?:and|-)\s|{_NUM}(?:\s?-\s?|\sto\s)){_NUM}
        (?![\d.]\d))
  | (?P<number>(?<!\w){_NUM}(?:st|nd|rd|th)?)
    """,
    re.VERBOSE,
)
_NUMBERS = re.compile(_NUM)
_URL_TRAILING = ".,;:!?)'\"/"


@dataclass(frozen=True)
class Fact:
    """One checkable fact: its kind, the text it was read from, and its comparison key."""

    kind: str
    text: str
    key: str


def normalise_number(text: str) -> str:
    """'1,200' -> '1200', '10.00' -> '10', '4.50' -> '4.5', '007' -> '7'."""
    text = text.replace(",", "")
    whole, _, fraction = text.partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def _normalise_url(text: str) -> str:
    text = re.sub(r"^(?:https?://)?(?:www\.)?", "", text.casefold())
    text = text.split("#", 1)[0]
    return text.rstrip(_URL_TRAILING)


def _time_key(text: str) -> str:
    match = re.match(r"(\d{1,2})(?::(\d{2}))?\s?([ap])?", text)
    assert match is not None
    hour, minute, half = match.groups()
    hour = str(int(hour))
    if half is None:  # 24-hour clock, "14:00"
        return f"t:{hour}:{minute}"
    clock = hour if minute in (None, "00") else f"{hour}:{minute}"
    return f"t:{clock}{half}m"


def _fact(kind: str, text: str) -> Fact:
    if kind in ("url", "domain"):
        text = text.rstrip(_URL_TRAILING)
        return Fact("url", text, "u:" + _normalise_url(text))
    if kind == "email":
        return Fact("email", text, "e:" + text.rstrip("."))
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        return Fact("phone", text, "p:" + digits[-10:])
    if kind == "date":
        return Fact("date", text, "d:" + text)
    if kind == "time":
        return Fact("time", text, _time_key(text))
    numbers = [normalise_number(n) for n in _NUMBERS.findall(text)]
    if kind == "range":
        return Fact("range", text, f"r:{numbers[0]}-{numbers[1]}")
    if kind == "percent":
        return Fact("percent", text, f"%:{numbers[0]}")
    # Money and plain numbers compare by value: "$12.99" == "12.99", "CAD $150" == "150".
    return Fact(kind, text, f"n:{numbers[0]}")


def extract_facts(text: str) -> list[Fact]:
    """Every checkable fact in `text`, in order (see the module docstring for the kinds).

    Numbers written as words ("thirty days") are not facts here; list markers at the start
    of a line ("1. ") and citation markers ("[1]") are ignored.
    """
    text = _CITATION_MARKER.sub(" ", _LIST_MARKER.sub(" ", text))
    text = normalise_text(text)
    facts: list[Fact] = []
    for match in _FACT.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        facts.append(_fact(kind, match.group(kind).strip()))
    return facts


def _allowed_keys(facts: Iterable[Fact]) -> set[str]:
    """Keys of the allowed facts, plus the parts a shorter statement may quote.

    A range allows its ends ("5-7" allows "7"), a percentage its number, a time its hour.
    """
    keys: set[str] = set()
    for fact in facts:
        keys.add(fact.key)
        if fact.kind == "range":
            low, high = fact.key[2:].split("-")
            keys.update({f"n:{low}", f"n:{high}"})
        elif fact.kind == "percent":
            keys.add("n:" + fact.key[2:])
        elif fact.kind == "time":
            keys.add("n:" + re.split(r"[:ap]", fact.key[2:])[0])
    return keys


def _occurs(needle: str, haystack: str) -> bool:
    """`needle` in `haystack` as a whole address (not inside a longer name)."""
    return re.search(rf"(?<![\w-]){re.escape(needle)}(?![\w-])", haystack) is not None


def invented_facts(answer: str, allowed_text: str) -> list[str]:
    """The facts of `answer` that do not occur in `allowed_text` (each once, as written)."""
    allowed = extract_facts(allowed_text)
    keys = _allowed_keys(allowed)
    flat = normalise_text(allowed_text)
    urls = " ".join(_normalise_url(f.text) for f in allowed if f.kind == "url")
    invented: list[str] = []
    seen: set[str] = set()
    for fact in extract_facts(answer):
        if fact.key in keys or fact.key in seen:
            continue
        if fact.kind == "url" and (_occurs(fact.key[2:], urls) or _occurs(fact.key[2:], flat)):
            continue  # a domain or a shorter path of an allowed address
        if fact.kind == "email" and _occurs(fact.key[2:], flat):
            continue
        seen.add(fact.key)
        invented.append(fact.text)
    return invented


# ---------------------------------------------------------------------------------------
# Reference material and the allowed text
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KbPage:
    """A knowledge-base page: its front-matter title and url, and its whole text."""

    title: str
    url: str | None
    text: str
    name: str = ""


@dataclass(frozen=True)
class Reference:
    """What every answer may state (the FAQ) and what a cited answer may add (the pages)."""

    faq_answers: Mapping[str, str]
    fallback: str
    pages: Sequence[KbPage] = ()

    @property
    def fallback_contact(self) -> str:
        """The e-mail address of the FAQ fallback (support@bookstore.com)."""
        found = re.search(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", self.fallback)
        return found.group(0) if found else self.fallback


def parse_front_matter(text: str) -> dict[str, str]:
    """The `key: value` lines between the opening `---` lines of a Markdown page."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    meta: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta


def parse_kb_page(text: str, name: str = "") -> KbPage:
    meta = parse_front_matter(text)
    title = meta.get("title")
    if not title:
        heading = re.search(r"(?m)^#\s+(.+)$", text)
        title = heading.group(1).strip() if heading else name
    return KbPage(title=title, url=meta.get("url") or None, text=text, name=name)


def parse_faq(data: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """(intent id -> answer, fallback) from the FAQ YAML's data."""
    answers = {str(i["id"]): str(i["answer"]) for i in data.get("intents") or []}
    return answers, str(data.get("fallback") or "")


def load_reference(faq_path: Path = FAQ_PATH, kb_dir: Path = KB_DIR) -> Reference:
    """The FAQ and the knowledge-base pages, read from the repository's files."""
    answers, fallback = parse_faq(yaml.safe_load(faq_path.read_text(encoding="utf-8")))
    pages = [
        parse_kb_page(path.read_text(encoding="utf-8"), path.name)
        for path in sorted(kb_dir.glob("*.md"))
    ]
    return Reference(answers, fallback, tuple(pages))


def _source_url(url: str) -> str:
    return _normalise_url(url.split("?", 1)[0])


def cited_pages(sources: Iterable[Mapping[str, Any]], pages: Sequence[KbPage]) -> list[KbPage]:
    """The pages the answer's `sources` name, by url or by title ('Page > Section' too)."""
    cited: list[KbPage] = []
    for source in sources:
        url = source.get("url")
        title = str(source.get("title") or "").split(">", 1)[0].strip().casefold()
        for page in pages:
            by_url = bool(url) and bool(page.url) and _source_url(url) == _source_url(page.url)
            by_title = bool(title) and title == page.title.strip().casefold()
            if (by_url or by_title) and page not in cited:
                cited.append(page)
    return cited


def allowed_text(
    question: str,
    history: Sequence[str],
    sources: Iterable[Mapping[str, Any]],
    reference: Reference,
) -> str:
    """What one answer may state: question, history, the FAQ and the pages it cites."""
    parts = [question, *history, *reference.faq_answers.values(), reference.fallback]
    parts.extend(page.text for page in cited_pages(sources, reference.pages))
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------
# Cases and verdicts
# ---------------------------------------------------------------------------------------


class CaseError(ValueError):
    """The question set is malformed."""


Item = str | list[str]


@dataclass(frozen=True)
class Case:
    """One labelled question."""

    id: str
    cls: str
    question: str
    history: tuple[str, ...] = ()
    intent: str | None = None
    expect_all: tuple[Item, ...] = ()
    expect_none: tuple[Item, ...] = ()
    tool: str | None = None  # store cases: the tool that must answer

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": self.cls,
            "question": self.question,
            "history": list(self.history),
            "intent": self.intent,
            "tool": self.tool,
            "expect": {"all": list(self.expect_all), "none": list(self.expect_none)},
        }


def _items(value: Any, where: str) -> tuple[Item, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CaseError(f"{where}: expected a list")
    items: list[Item] = []
    for item in value:
        if isinstance(item, list):
            if not item:
                raise CaseError(f"{where}: an empty list of alternatives")
            items.append([str(alt) for alt in item])
        elif isinstance(item, str | int | float):
            items.append(str(item))
        else:
            raise CaseError(f"{where}: {item!r} is neither a string nor a list of strings")
    return tuple(items)


def parse_cases(data: Any) -> list[Case]:
    """The cases of a questions.yaml document; raises `CaseError` on anything malformed."""
    if not isinstance(data, Mapping) or not isinstance(data.get("cases"), list):
        raise CaseError("expected a mapping with a `cases` list")
    cases: list[Case] = []
    seen: set[str] = set()
    for n, raw in enumerate(data["cases"]):
        if not isinstance(raw, Mapping):
            raise CaseError(f"case #{n}: expected a mapping")
        case_id = str(raw.get("id") or "").strip()
        where = f"case {case_id or '#' + str(n)}"
        if not case_id:
            raise CaseError(f"{where}: no id")
        if case_id in seen:
            raise CaseError(f"{where}: duplicate id")
        seen.add(case_id)
        cls = raw.get("class")
        if cls not in CLASSES:
            raise CaseError(f"{where}: class {cls!r} is not one of {', '.join(CLASSES)}")
        question = raw.get("question")
        if not isinstance(question, str) or not question.strip():
            raise CaseError(f"{where}: no question")
        history = raw.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise CaseError(f"{where}: history must be a list of strings")
        expect = raw.get("expect") or {}
        if not isinstance(expect, Mapping):
            raise CaseError(f"{where}: expect must be a mapping")
        intent = raw.get("intent")
        tool = raw.get("tool")
        if cls == "store" and tool not in ("order_status", "recommendations"):
            raise CaseError(f"{where}: a store case names its tool (order_status, recommendations)")
        cases.append(
            Case(
                id=case_id,
                cls=cls,
                question=question,
                history=tuple(history),
                intent=str(intent) if intent else None,
                expect_all=_items(expect.get("all"), f"{where}: expect.all"),
                expect_none=_items(expect.get("none"), f"{where}: expect.none"),
                tool=str(tool) if tool else None,
            )
        )
    return cases


def _alternatives(item: Item) -> list[str]:
    return item if isinstance(item, list) else [item]


def _label(item: Item) -> str:
    return " | ".join(repr(a) for a in _alternatives(item))


def missing_items(text: str, items: Iterable[Item]) -> list[str]:
    """The `all` items not in `text` (case-insensitive substrings; any alternative counts)."""
    flat = normalise_text(text)
    return [
        _label(item)
        for item in items
        if not any(normalise_text(alt) in flat for alt in _alternatives(item))
    ]


def forbidden_found(text: str, items: Iterable[Item]) -> list[str]:
    """The `none` strings that `text` contains."""
    flat = normalise_text(text)
    return [
        repr(alt) for item in items for alt in _alternatives(item) if normalise_text(alt) in flat
    ]


@dataclass
class Verdict:
    """Whether one answer is right for its class, why not, and the facts it invented."""

    correct: bool
    reasons: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "reasons": self.reasons, "invented": self.invented}


def judge_case(case: Case, result: Mapping[str, Any], reference: Reference) -> Verdict:
    """The verdict for one case; `result` holds the `done` event, or an `error`."""
    done = result.get("done")
    if not done:
        error = result.get("error") or {}
        what = error.get("code") or "no answer"
        message = error.get("message")
        return Verdict(False, [f"error: {what}" + (f" ({message})" if message else "")])
    text = str(done.get("text") or "")
    source = done.get("source")
    reason = done.get("reason")
    allowed = allowed_text(case.question, case.history, done.get("sources") or [], reference)
    # A store tool answers from the store's database (checked against it by
    # tests/integration/test_store_tools.py), whatever the class; the knowledge base is no
    # reference for its facts. A tool answering a question that is not its own is still
    # wrong (no `all` fact, no honest unknown), not inventing.
    invented = [] if source == "tool" else invented_facts(text, allowed)
    reasons: list[str] = []
    # `all` counts for answerable, followup, canned and adversarial cases; an honest
    # "I don't know" and small talk are judged without it.
    missing = missing_items(text, case.expect_all)
    found = forbidden_found(text, case.expect_none)

    if case.cls == "canned":
        if source != "faq":
            reasons.append(f"answered from {source!r}, not from the FAQ")
        if not case.expect_all and case.intent:
            expected = reference.faq_answers.get(case.intent)
            if expected is None:
                reasons.append(f"unknown FAQ intent {case.intent!r}")
            elif normalise_text(expected) not in normalise_text(text):
                reasons.append(f"not the {case.intent!r} FAQ answer")
    elif case.cls == "store":
        if (source, done.get("tool")) != ("tool", case.tool):
            reasons.append(f"answered by {source!r}/{done.get('tool')!r}, not the {case.tool} tool")
    elif case.cls == "unanswerable":
        if reason != "unanswered":
            reasons.append(f"not marked unanswered (reason {reason!r}, source {source!r})")
        contact = reference.fallback_contact
        if normalise_text(contact) not in normalise_text(text):
            reasons.append(f"no fallback contact {contact}")
    if case.cls in ("answerable", "followup", "canned", "adversarial", "store"):
        reasons.extend(f"missing fact {item}" for item in missing)
    reasons.extend(f"contains {item}" for item in found)
    if invented and case.cls != "canned":
        reasons.append(f"invented facts {invented}")
    return Verdict(not reasons, reasons, invented)


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------


@dataclass
class Scored:
    """One case, what the bot answered, and the verdict."""

    case: Case
    result: Mapping[str, Any]
    verdict: Verdict

    @property
    def done(self) -> Mapping[str, Any] | None:
        done = self.result.get("done")
        return done if done else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


@dataclass(frozen=True)
class Target:
    """A metric against its target."""

    name: str
    value: str
    target: str
    met: bool | None  # None: no target, or nothing measured


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


# How the responder ends a knowledge answer it is not sure of (RESPONDER_EVIDENCE_SURE_MARGIN;
# `UNSURE_PREFIX` in services/responder/tidings/responder/answers/engine.py: the judge does
# not import the responder).
UNSURE_MARKER = "if this does not answer your question"


def unsure_counts(scored: Sequence[Scored]) -> dict[str, dict[str, int]]:
    """Knowledge answers, with and without the way to ask a person, right and wrong."""
    counts = {"unsure": {"right": 0, "wrong": 0}, "sure": {"right": 0, "wrong": 0}}
    for item in scored:
        done = item.done
        if done is None or done.get("source") != "knowledge":
            continue
        kind = "unsure" if UNSURE_MARKER in str(done.get("text", "")).casefold() else "sure"
        counts[kind]["right" if item.verdict.correct else "wrong"] += 1
    return counts


def compute_metrics(scored: Sequence[Scored]) -> dict[str, Any]:
    """Every figure of the report, as plain data (also written to the JSON results)."""
    by_class: dict[str, list[Scored]] = {cls: [] for cls in CLASSES}
    for item in scored:
        by_class.setdefault(item.case.cls, []).append(item)
    classes: dict[str, dict[str, Any]] = {}
    for cls, items in by_class.items():
        latencies = [
            float(s.done["timings"]["first_token_ms"])
            for s in items
            if s.done
            and isinstance(s.done.get("timings"), Mapping)
            and s.done["timings"].get("first_token_ms") is not None
        ]
        correct = sum(s.verdict.correct for s in items)
        classes[cls] = {
            "cases": len(items),
            "correct": correct,
            "rate": rate(correct, len(items)),
            "errors": sum(s.done is None for s in items),
            "sources": dict(Counter(str(s.done.get("source")) for s in items if s.done)),
            "reasons": dict(Counter(str(s.done.get("reason") or "null") for s in items if s.done)),
            "first_token_p50_ms": percentile(latencies, 50),
            "first_token_p95_ms": percentile(latencies, 95),
        }
    faq_answers = [s for s in scored if s.done and s.done.get("source") == "faq"]
    canned = by_class["canned"]
    canned_right = sum(s.verdict.correct for s in canned)
    invented = [
        {"id": s.case.id, "class": s.case.cls, "facts": s.verdict.invented}
        for s in scored
        if s.verdict.invented
    ]
    return {
        "cases": len(scored),
        "classes": classes,
        "invented_total": sum(len(i["facts"]) for i in invented),
        "invented": invented,
        "canned_precision": rate(
            sum(s.case.cls == "canned" and s.verdict.correct for s in faq_answers),
            len(faq_answers),
        ),
        "canned_recall": rate(canned_right, len(canned)),
        "sources": dict(Counter(str(s.done.get("source")) for s in scored if s.done)),
        "reasons": dict(Counter(str(s.done.get("reason") or "null") for s in scored if s.done)),
        "errors": sum(s.done is None for s in scored),
        "knowledge_unsure": unsure_counts(scored),
    }


def targets(metrics: Mapping[str, Any]) -> list[Target]:
    """The metrics the report holds against targets, and whether each is met."""
    classes = metrics["classes"]

    def class_rate(cls: str, goal: float | None, label: str) -> Target:
        figures = classes[cls]
        value = figures["rate"]
        shown = f"{_pct(value)} ({figures['correct']}/{figures['cases']})"
        if goal is None or value is None:
            return Target(label, shown, f">= {goal:.0%}" if goal else "-", None)
        return Target(label, shown, f">= {goal:.0%}", value >= goal)

    recall = metrics["canned_recall"]
    canned = classes["canned"]
    return [
        class_rate("answerable", 0.90, "answerable: correct"),
        class_rate("followup", None, "followup: correct"),
        Target(
            "invented facts (all cases)",
            str(metrics["invented_total"]),
            "0",
            metrics["invented_total"] == 0 if metrics["cases"] else None,
        ),
        class_rate("unanswerable", 0.95, "unanswerable: honest unknown"),
        Target(
            "canned: recall (generic questions still get the FAQ answer)",
            f"{_pct(recall)} ({canned['correct']}/{canned['cases']})",
            "100%",
            None if recall is None else recall >= 1.0,
        ),
        Target("canned: precision", _pct(metrics["canned_precision"]), "-", None),
        class_rate("chitchat", None, "chitchat: pass"),
        class_rate("adversarial", None, "adversarial: pass"),
        class_rate("store", 1.0, "store: the right tool with the store's facts"),
    ]

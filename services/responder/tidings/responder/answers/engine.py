"""The answer engine: for each message, what the responder can truthfully say, and from where.

`AnswerEngine.plan()` decides the form of an answer before its first token goes out:

- `canned` (source `faq`): a greeting, or a FAQ question its canned answer answers
  (`faq_routing.py`).
- `quote` (`knowledge`): the knowledge base answers it: its sentences, quoted and cited.
- `generate` (`knowledge`): the same, worded by the LLM from those sentences and checked
  sentence by sentence (`RESPONDER_ANSWER_MODE=generate`); a failed check before any text
  went out quotes instead (reason `quoted`).
- `unknown` (`fallback`, reason `unanswered`): a question about the store that the knowledge
  base does not answer: said plainly, with the fallback contact.
- `general` (`llm`, reason `off_topic`): not about the store ("write a haiku"): the LLM,
  held to making no claim about the store (when it tries, a refusal replaces it: source
  `fallback`, reason `withheld`).

Messages are looked up with the previous user message when they follow up on it
(`followup.py`); the conversation comes from the message itself (OpenAI-compatible API)
or from the memory service.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from tidings.common.events import AnswerReason, AnswerSource, SourceRef, UserMessage
from tidings.common.logging import get_logger
from tidings.common.memory_api import Context, KnowledgeChunk, Turn
from tidings.common.words import content_stems, stem, tokens
from tidings.responder.answers.checker import GroundingChecker
from tidings.responder.answers.evidence import (
    Assessment,
    EvidenceLimits,
    Said,
    assess,
    findings,
    followup_said,
    quote,
    without_citation,
)
from tidings.responder.answers.facts import facts
from tidings.responder.answers.faq_routing import FaqChoice, FaqRouter, intent_examples
from tidings.responder.answers.followup import is_followup, question_focus, with_previous
from tidings.responder.answers.guard import STORE_PLURAL_VOICE, Check
from tidings.responder.faq import FaqMatcher, FaqStore
from tidings.responder.memory import ContextSource
from tidings.responder.prompt import Prompt, PromptLimits, build_prompt, source_refs

log = get_logger(__name__)

PlanKind = Literal["canned", "quote", "generate", "unknown", "general"]
AnswerMode = Literal["quote", "generate"]

# Words that make a message a question about the store, whatever the retrieval found.
STORE_WORDS = frozenset(
    [
        "order",
        "orders",
        "ordering",
        "ship",
        "shipping",
        "shipped",
        "delivery",
        "deliver",
        "delivered",
        "return",
        "returns",
        "refund",
        "refunds",
        "pay",
        "payment",
        "paying",
        "price",
        "prices",
        "pricing",
        "cost",
        "costs",
        "fee",
        "fees",
        "charge",
        "charged",
        "discount",
        "discounts",
        "coupon",
        "coupons",
        "promo",
        "code",
        "voucher",
        "sale",
        "sales",
        "deal",
        "deals",
        "ebook",
        "e-book",
        "ebooks",
        "e-books",
        "audiobook",
        "audiobooks",
        "store",
        "shop",
        "account",
        "card",
        "cards",
        "gift",
        "giftcard",
        "wrap",
        "wrapping",
        "invoice",
        "tax",
        "taxes",
        "track",
        "tracking",
        "parcel",
        "package",
        "cancel",
        "subscription",
        "newsletter",
        "hours",
        "open",
        "opening",
        "phone",
        "call",
        "contact",
        "email",
        "address",
        "loyalty",
        "points",
        "member",
        "membership",
        "rewards",
        "stock",
        "catalogue",
        "catalog",
        "warehouse",
        "location",
        "locations",
        "branch",
        "job",
        "jobs",
        "career",
        "careers",
        "manager",
        "staff",
        "signed",
        "event",
        "events",
        "preorder",
        "pre-order",
        "backorder",
        "warranty",
        "exchange",
        "damaged",
        "shipment",
        "courier",
        "customs",
        "duties",
        "kindle",
        "app",
        "paperback",
        "hardcover",
        "bestseller",
        "bookshop",
        "visit",
        "chat",
        "support",
        "agent",
        "human",
        "password",
        "login",
        "reset",
        "buy",
        "bought",
        "purchase",
        "purchased",
        "website",
        "site",
        "review",
        "reviews",
        "visa",
        "mastercard",
        "amex",
        "paypal",
        "discover",
        "bitcoin",
        "crypto",
        "cryptocurrency",
        "cash",
        "cheque",
        "currency",
        "euros",
        "dollars",
    ]
)
_STORE_STEMS = frozenset(stem(w) for w in STORE_WORDS)
# Who speaks for the store: "we ship ...", and the model as the store ("I accept ...").
STORE_VOICE = STORE_PLURAL_VOICE | {"i", "i'm", "i'll", "i've", "my"}

# The memory service's `POST /embed` takes at most 256 texts at a time.
EMBED_BATCH = 256

UNSURE_PREFIX = "If this does not answer your question,"


def unsure_line(fallback: str) -> str:
    """The closing line of an answer the engine is not sure of: the fallback's contact
    ("please contact support@bookstore.com."), or the whole fallback when it names none."""
    contact = next((f.text for f in facts(fallback) if f.kind in {"email", "phone", "url"}), None)
    if contact is None:
        return f"{UNSURE_PREFIX} {fallback[:1].lower()}{fallback[1:]}"
    return f"{UNSURE_PREFIX} please contact {contact}."


def _spoken(answer: str, hedge: str) -> str:
    """An earlier answer without its citation line and its closing contact line (`hedge`)."""
    text = without_citation(answer)
    return (text.replace(hedge, "") if hedge else text).strip()


UNKNOWN_PREFIX = "Our help pages don't cover that, so I can't answer it reliably."
WITHHELD = (
    "I can't help with that here. I can answer questions about our books, orders, "
    "shipping, returns and payments."
)
GENERAL_PROMPT = (
    "You are a friendly assistant in a bookstore's support chat. Never state the store's "
    "prices, discounts, policies, phone numbers or opening hours."
)
GROUNDED_PROMPT = (
    "You answer customers of a bookstore. Answer the question in one or two sentences using "
    "only the facts below, in their words. Do not add anything that the facts do not say. "
    "If the facts do not answer the question, say you don't know.\n\nFacts:\n"
)


@dataclass(frozen=True)
class EngineConfig:
    """The engine's knobs (ResponderSettings: RESPONDER_ANSWER_MODE, ...)."""

    mode: AnswerMode = "quote"
    faq_min_similarity: float = 0.8
    evidence: EvidenceLimits = field(default_factory=EvidenceLimits)
    # A message is about the store when retrieval finds a chunk this close (or it uses a
    # store word).
    store_min_similarity: float = 0.45
    limits: PromptLimits = field(default_factory=lambda: PromptLimits(budget_tokens=1792))
    general_prompt: str = GENERAL_PROMPT
    grounded_prompt: str = GROUNDED_PROMPT
    # Another try to embed the FAQ questions after a failure, in seconds.
    faq_retry_s: float = 30.0


@dataclass(frozen=True)
class Plan:
    """What to answer and how; decided before the first token goes out."""

    kind: PlanKind
    text: str = ""
    sources: list[SourceRef] = field(default_factory=list)
    reason: AnswerReason | None = None
    intent: str | None = None
    prompt: Prompt | None = None
    check: Check | None = None
    # Sent instead when a generated answer fails its check before any of it passed.
    instead: str = ""
    instead_source: AnswerSource = "fallback"
    instead_reason: AnswerReason | None = None
    query: str = ""
    engine_ms: float = 0.0
    # The closing line of a knowledge answer the engine is not sure of (the way to ask a
    # person); part of `text` and `instead` already, sent after a generated answer.
    hedge: str = ""


def store_claims(
    sentence: str, question: str = "", voice: frozenset[str] = STORE_VOICE, allowed: str = ""
) -> list[str]:
    """Why a general (not grounded) sentence may not be sent; [] when it may.

    A general answer has no sources, so it states no checkable fact (amount, number,
    address, ...) that the user did not write themselves (or that `allowed`, the fallback
    contact, does not give), and does not speak for the store.
    """
    asked = {fact.key for fact in facts(f"{question} {allowed}")}
    problems = [
        f"{fact.kind} in a general answer: {fact.text!r}"
        for fact in facts(sentence)
        # An amount is a claim even when the user named it ("give me a $50 credit").
        if fact.key not in asked or fact.kind in {"money", "percent"}
    ]
    words = tokens(sentence)
    if voice & set(words) and any(stem(w) in _STORE_STEMS for w in words):
        problems.append("speaks for the store")
    return problems


_CREATIVE = re.compile(
    r"^\W*(?:(?:hi|hello|hey|ok|okay|please)\W+)*(?:(?:can|could|would|will) you\W+)?"
    r"(?:please\W+)?(?:write|compose|make up|draft a poem|"
    r"tell me (?:a|an|another|some|one more) (?:\w+ )?(?:story|stories|joke|jokes|poem|"
    r"riddle|fairy tale)|give me (?:a|an) (?:\w+ )?(?:poem|story|haiku|joke|limerick))\b",
    re.IGNORECASE,
)


def creative(question: str) -> bool:
    """A request to make something up ("Write a story about a dragon who opens a bookshop"):
    general whatever it is about; the guard keeps it from speaking for the store."""
    return bool(_CREATIVE.match(question))


# A question put to the store: "Do you have an affiliate program?", "Is there a membership?"
_TO_THE_STORE = re.compile(
    r"\b(?:(?:do|does|can|could|will|would) you (?:guys )?(?:have|offer|sell|run|provide|give|"
    r"ship|accept|take|support|allow|carry|stock|deliver|match|buy|do)|is there (?:a|an|any)|"
    r"are there (?:any)|can i (?:get|have|use|pay|order|buy|pick|cancel|change|return))\b",
    re.IGNORECASE,
)


def about_store(question: str) -> bool:
    """True when the message is put to the store or uses a word about it (orders, ...)."""
    if creative(question):
        return False
    return bool(_TO_THE_STORE.search(question)) or bool(content_stems(question) & _STORE_STEMS)


def _last(texts: list[str]) -> str:
    return texts[-1] if texts else ""


class RecentQuestions:
    """The last questions of recent sessions, as this replica looked them up, and the last
    answer planned for each.

    A session's messages all reach the replica that owns its partition, so the question
    before a follow-up is usually known here at once, before the memory worker has stored
    it (the memory service's recent turns are the fallback after a rebalance).
    """

    # Bounded whatever the traffic: 10,000 sessions x 2 questions x 400 characters.
    MAX_CHARS = 400

    def __init__(self, max_sessions: int = 10_000, per_session: int = 2) -> None:
        self._max = max_sessions
        self._per_session = per_session
        # Per session: its last questions, and the last answer (see `answer`).
        self._sessions: OrderedDict[str, tuple[list[str], str]] = OrderedDict()

    def get(self, session_id: str) -> list[str]:
        return list(self._sessions.get(session_id, ((), ""))[0])

    def answer(self, session_id: str) -> str:
        """The last answer planned here with its text known (FAQ, quote, unknown), or ""."""
        return self._sessions.get(session_id, ((), ""))[1]

    def add(self, session_id: str, question: str, answer: str = "") -> None:
        kept, _ = self._sessions.pop(session_id, ([], ""))
        question = question[-self.MAX_CHARS :]  # the end: a follow-up chain ends with it
        questions = [*kept, question][-self._per_session :]
        self._sessions[session_id] = (questions, answer[: self.MAX_CHARS])
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)


class AnswerEngine:
    """Plans answers; holds the FAQ router (rebuilt when the FAQ is reloaded)."""

    def __init__(
        self,
        faq: FaqStore | FaqMatcher,
        context: ContextSource | None,
        config: EngineConfig,
        *,
        fallback_text: str | None = None,
    ) -> None:
        self._faq = faq
        self._context = context
        self.config = config
        self._fallback_text = fallback_text
        self._router: FaqRouter | None = None
        self._router_for: FaqMatcher | None = None
        self._next_embed_try = 0.0
        self._recent = RecentQuestions()

    @property
    def faq(self) -> FaqMatcher:
        return self._faq.matcher if isinstance(self._faq, FaqStore) else self._faq

    @property
    def fallback(self) -> str:
        return self._fallback_text or self.faq.fallback

    @property
    def hedge(self) -> str:
        """The closing line of an answer the engine is not sure of: the fallback's contact."""
        return unsure_line(self.fallback)

    async def plan(self, message: UserMessage) -> Plan:
        """Decide the answer to `message`."""
        started = time.perf_counter()
        plan = await self._plan(message)
        elapsed = (time.perf_counter() - started) * 1000
        return dataclasses.replace(plan, engine_ms=round(elapsed, 3))

    async def _plan(self, message: UserMessage) -> Plan:
        plan = await self._decide(message)
        if plan.query:  # not a greeting
            # A generated answer's text is not known yet; an LLM answer is no store fact.
            said = plan.text if plan.kind in ("canned", "quote", "unknown") else ""
            self._recent.add(message.session_id, plan.query, said)
        return plan

    async def _decide(self, message: UserMessage) -> Plan:
        text = message.text.strip()
        router = await self._faq_router()
        greeting = router.greeting(text)
        if greeting is not None:
            return self._canned(greeting, "")
        context: Context | None = None
        known = self._known_conversation(message)
        if known is None:
            # Only memory knows the conversation: look the message up to learn it.
            context = await self._lookup(message, text)
            known = self._remembered_conversation(message, context)
        previous, last_answer = known
        query = with_previous(text, previous)
        said: Said | None = None
        if query != text:  # a follow-up: `previous` has its question
            said = followup_said(last_answer, text, previous[-1])
        if query != text or (previous is not None and context is None):
            context = await self._lookup(message, query) or context
        vector = context.query_vector if context is not None else None
        choice = router.choose(query, vector)
        if choice is not None:
            return self._canned(choice, query)
        chunks = context.knowledge if context is not None else []
        found = assess(query, chunks, self.config.evidence, said=said)
        if found is not None:
            return self._grounded(message, query, found, chunks, context)
        focus = question_focus(text)
        if focus is not None and context is not None:
            focused = await self._lookup(message, focus)
            if focused is not None:
                choice = router.choose(focus, focused.query_vector)
                if choice is not None:
                    return self._canned(choice, focus)
                found = assess(focus, focused.knowledge, self.config.evidence)
                if found is not None:
                    return self._grounded(message, focus, found, focused.knowledge, focused)
        best_chunk = max((c.score for c in chunks), default=0.0)
        if not creative(text) and (
            about_store(query)
            or best_chunk >= self.config.store_min_similarity
            or (is_followup(text) and bool(previous))
        ):
            return Plan(
                "unknown",
                text=f"{UNKNOWN_PREFIX} {self.fallback}",
                reason="unanswered",
                query=query,
            )
        return self._general(message, query, context)

    def _canned(self, choice: FaqChoice, query: str) -> Plan:
        log.info(
            "answering from the FAQ",
            intent=choice.intent.id,
            via=choice.via,
            similarity=choice.similarity,
        )
        return Plan("canned", text=choice.intent.answer, intent=choice.intent.id, query=query)

    def _grounded(
        self,
        message: UserMessage,
        query: str,
        found: Assessment,
        chunks: Sequence[KnowledgeChunk],
        context: Context | None,
    ) -> Plan:
        chosen = found.chosen
        hedge = "" if found.sure(self.config.evidence) else self.hedge
        quoted = quote(chosen) + (f"\n\n{hedge}" if hedge else "")
        cited = [chosen[0].chunk]
        if self.config.mode == "quote":
            return Plan("quote", text=quoted, sources=source_refs(cited), query=query, hedge=hedge)
        # The model sees the best sentences of the chunks that answer; the check holds it
        # to exactly those sentences.
        evidence = [
            f
            for f in findings(query, chunks, self.config.evidence.weights)
            if f.score >= chosen[0].score - 0.25
        ][:6]
        for f in chosen:
            if f not in evidence:
                evidence.append(f)
        cited_chunks = {f.chunk.chunk_id: f.chunk for f in evidence}
        facts_text = "\n".join(f"- {f.text}" for f in evidence)
        checker = GroundingChecker([f.text for f in evidence])
        prompt = self._prompt(
            self.config.grounded_prompt + facts_text, message, query, context, history=False
        )
        return Plan(
            "generate",
            sources=source_refs(list(cited_chunks.values())),
            prompt=prompt,
            check=checker.problems,
            instead=quoted,
            instead_source="knowledge",
            instead_reason="quoted",
            query=query,
            hedge=hedge,
        )

    def _general(self, message: UserMessage, query: str, context: Context | None) -> Plan:
        prompt = self._prompt(self.config.general_prompt, message, message.text, context)
        return Plan(
            "general",
            reason="off_topic",
            prompt=prompt,
            # In a story "I" is a character; "we"/"our" still speak for the store.
            check=functools.partial(
                store_claims,
                question=message.text,
                voice=STORE_PLURAL_VOICE if creative(message.text) else STORE_VOICE,
                allowed=self.fallback,
            ),
            instead=WITHHELD,
            instead_reason="withheld",
            query=query,
        )

    def _prompt(
        self,
        system: str,
        message: UserMessage,
        question: str,
        context: Context | None,
        *,
        history: bool = True,
    ) -> Prompt:
        turns: list[Turn] = []
        if history:
            if message.history is not None:
                now = datetime.now(UTC)
                turns = [
                    Turn(message_id=f"history-{i}", role=t.role, text=t.text, ts=now)
                    for i, t in enumerate(message.history)
                ]
            elif context is not None:
                turns = list(context.recent)
            # The bot's earlier answers as it would say them: the model copies a citation
            # or contact line it sees ("You're welcome!\n\n(From...", cut by the guard).
            hedge = self.hedge
            turns = [
                t.model_copy(update={"text": _spoken(t.text, hedge)})
                if t.role == "assistant"
                else t
                for t in turns
            ]
        # Knowledge goes in only through the checked evidence above, never as raw chunks.
        stripped = Context(session_id=message.session_id, recent=turns)
        return build_prompt(
            system, question, stripped, self.config.limits, message_id=message.message_id
        )

    async def _lookup(self, message: UserMessage, query: str) -> Context | None:
        if self._context is None:
            return None
        return await self._context.context(
            message.session_id,
            query,
            user=message.user,
            evidence=True,
            vector=True,
            chunks=self.config.evidence.chunks,
        )

    def _known_conversation(self, message: UserMessage) -> tuple[list[str], str] | None:
        """The session's earlier questions and the bot's last answer ("" when unknown), from
        the message's history or this replica's record; None: ask memory."""
        if message.history is not None:
            return (
                [t.text for t in message.history if t.role == "user"],
                _last([t.text for t in message.history if t.role == "assistant"]),
            )
        questions = self._recent.get(message.session_id)
        if not questions:
            return None
        return questions, self._recent.answer(message.session_id)

    @staticmethod
    def _remembered_conversation(
        message: UserMessage, context: Context | None
    ) -> tuple[list[str], str]:
        """The same, from the memory service's recent turns."""
        if context is None:
            return [], ""
        questions = [
            t.text
            for t in context.recent
            if t.role == "user" and t.message_id != message.message_id
        ]
        return questions, _last([t.text for t in context.recent if t.role == "assistant"])

    async def _faq_router(self) -> FaqRouter:
        """The router of the FAQ in use, with its questions embedded when memory can."""
        matcher = self.faq
        now = time.monotonic()
        current = self._router
        if current is not None and self._router_for is matcher and current.semantic:
            return current
        if current is not None and self._router_for is matcher and now < self._next_embed_try:
            return current
        vectors = await self._embed_examples(matcher)
        if vectors is None:
            self._next_embed_try = now + self.config.faq_retry_s
        self._router = FaqRouter(matcher, vectors, min_similarity=self.config.faq_min_similarity)
        self._router_for = matcher
        return self._router

    async def _embed_examples(self, matcher: FaqMatcher) -> dict[str, list[list[float]]] | None:
        if self._context is None or not self._context.available:
            return None
        intents = [i for i in matcher.intents if not i.whole_message]
        texts = [example for intent in intents for example in intent_examples(intent)]
        if not texts:
            return {}
        found: list[list[float]] | None = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = await self._context.embed(texts[start : start + EMBED_BATCH])
            if batch is None or found is None:
                found = None
                break
            found.extend(batch)
        if found is None or len(found) != len(texts):
            log.warning("FAQ questions could not be embedded; routing the FAQ by phrases")
            return None
        vectors: dict[str, list[list[float]]] = {}
        position = 0
        for intent in intents:
            count = len(intent_examples(intent))
            vectors[intent.id] = found[position : position + count]
            position += count
        log.info("FAQ questions embedded", questions=len(texts))
        return vectors

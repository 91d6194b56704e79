"""What a message says about an order: its number, an e-mail address, a status question.

Pure functions over the text (unit-tested): the order-status tool decides with them whether
a message is its business and what proof it carries.
"""

from __future__ import annotations

import re

# `#123456` anywhere; six digits alone not part of a longer number or code.
_HASHED = re.compile(r"#\s?(\d{6})(?!\d)")
_BARE = re.compile(r"(?<![\w#-])(\d{6})(?![\d-])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ORDER_WORDS = re.compile(r"\b(?:orders?|package|parcel|shipment|delivery|tracking)\b", re.I)
_THING = r"(?:order|package|parcel|shipment|delivery|books?)"
# "Where is my order?", "Has my parcel shipped?", "I haven't received my books": the
# customer's own order next to a question about where it is. Policy questions ("When will
# it leave the warehouse if I order at 6pm?", "How do I get the tracking number?") are not.
_STATUS_QUESTIONS = re.compile(
    r"\border\s+status\b|\bstatus\s+of\s+(?:my|an?|the)\s+order\b|"
    rf"\bwhere(?:'?s|\s+is|\s+are)?\s+my\s+(?:\w+\s+)?{_THING}\b|"
    rf"\b(?:track|check(?:\s+on)?|trace|find)\s+my\s+(?:\w+\s+)?{_THING}\b|"
    rf"\b(?:has|have|did|is|are)\s+my\s+(?:\w+\s+)?{_THING}\s+(?:\w+\s+)?"
    r"(?:shipped|arrived|been|left|sent|late|delayed|lost|on\s+(?:its|the|their)\s+way)\b|"
    rf"\bwhen\s+(?:will|does|do|is|are)\s+my\s+(?:\w+\s+)?{_THING}\s+"
    r"(?:arrive|come|get|be|ship|turn)\b|"
    rf"\bmy\s+(?:\w+\s+)?{_THING}\s+(?:has|have|hasn't|haven't|still|never|did not|didn't)"
    r"(?:\s+not)?\s+(?:arrived|come|shown|turned|been)\b|"
    rf"\b(?:haven't|have not|didn't|did not|never|not yet)\s+(?:\w+\s+)?(?:received|gotten|got)"
    rf"\s+my\s+(?:\w+\s+)?{_THING}\b",
    re.I,
)
_OTHER_ORDER_BUSINESS = re.compile(
    r"\b(?:cancel\w*|return\w*|refund\w*|change|modify|update|address|exchange|damaged|"
    r"wrong book|po box)\b|"
    # "Can I have my order sent to ...": a request about delivery, not where it is.
    r"\b(?:can|could|may)\s+(?:i|we)\s+have\s+my\b",
    re.I,
)
# What may stand around a number that answers "what is your order number?".
_FILLER = re.compile(
    r"\b(?:it'?s|it is|is|the|my|order|number|no|nr|sure|yes|here|thanks?|you|please|ok|"
    r"okay|and|e-?mail|address|was|with)\b|[#:.,!\s-]",
    re.I,
)


def find_email(text: str) -> str | None:
    """The first e-mail address in `text`, or None."""
    found = _EMAIL.search(text)
    return found.group(0) if found else None


def find_order_number(text: str, *, expected: bool = False) -> str | None:
    """The order number `text` names, or None.

    `#123456` always counts; six bare digits count when the message talks about an order
    (or a package, a delivery...), when the message is little more than the number, or
    when the bot has just asked for it (`expected`).
    """
    hashed = _HASHED.search(text)
    if hashed:
        return hashed.group(1)
    bare = _BARE.search(text)
    if bare is None:
        return None
    without_email = _EMAIL.sub(" ", text)
    rest = _FILLER.sub("", without_email.replace(bare.group(1), " "))
    if expected or _ORDER_WORDS.search(text) or not rest:
        return bare.group(1)
    return None


# A number given as the order's that is not one ("order 10042", "#12345", "order no. 1234567").
_GIVEN_HASHED = re.compile(r"#\s?(\d{1,12})(?!\d)")
_GIVEN_AFTER_ORDER = re.compile(
    r"\border\s*(?:number|no\.?|nr\.?|num)?\s*[:#]?\s*#?(\d{3,12})(?![\d-])", re.I
)
_GIVEN_BARE = re.compile(r"(?<![\w#.,$-])(\d{4,12})(?![\d-]|[.,]\d)")


def find_wrong_order_number(text: str, *, expected: bool = False) -> str | None:
    """A number the customer gives as their order's that cannot be one (ours have six
    digits): "#12345", "order 10042", or, when the bot has just asked for the number
    (`expected`), any bare number of 4-12 digits. None when there is no such number (or the
    text names a real one)."""
    if find_order_number(text, expected=expected) is not None:
        return None
    without_email = _EMAIL.sub(" ", text)
    found = _GIVEN_HASHED.search(without_email) or _GIVEN_AFTER_ORDER.search(without_email)
    if found is None and expected:
        found = _GIVEN_BARE.search(without_email)
    return found.group(1) if found is not None else None


def asks_order_status(text: str) -> bool:
    """True for a question about where the customer's order is, without its number ("Where
    is my order?", "Has my package shipped yet?"); cancelling, returns, refunds and address
    changes are not."""
    if _OTHER_ORDER_BUSINESS.search(text):
        return False
    return bool(_STATUS_QUESTIONS.search(text))

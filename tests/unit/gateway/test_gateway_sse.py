"""SSE framing: what an EventSource in a browser actually parses."""

from __future__ import annotations

from tidings.gateway.answer import SseMessage
from tidings.gateway.sse import opening, to_sse


def test_event_has_id_name_and_one_line_of_json() -> None:
    message = SseMessage("token", {"message_id": "m1", "seq": 0, "delta": "Hé\nllo"}, "1-42")

    encoded = to_sse(message).encode().decode()

    assert encoded == (
        'id: 1-42\r\nevent: token\r\ndata: {"message_id":"m1","seq":0,"delta":"Hé\\nllo"}\r\n\r\n'
    )


def test_event_without_id_keeps_the_clients_last_event_id() -> None:
    encoded = to_sse(SseMessage("reset", {"message_id": "m1", "attempt": "a2"})).encode()

    assert not encoded.startswith(b"id:")
    assert b"\r\nid:" not in encoded


def test_opening_is_a_comment_with_the_reconnect_hint() -> None:
    encoded = opening(2500).encode().decode()

    assert encoded.startswith(": ")
    assert "retry: 2500\r\n" in encoded
    assert "data:" not in encoded

"""The responder: answers `user_messages` from the FAQ, an LLM or a fallback, streamed to
`model_responses`."""

"""The answer engine: what the responder can truthfully say to a message, and from where.

- `engine.py`: the plan of each answer (canned, quoted, generated and checked, unknown,
  general).
- `faq_routing.py`: canned answers by meaning, not by keywords.
- `evidence.py`: which knowledge sentences answer a question; the quoted form.
- `checker.py`, `facts.py`, `text.py`: the grounding check of generated text.
- `guard.py`: streaming only the sentences that passed the check.
- `followup.py`: follow-up questions looked up with the previous one.
"""

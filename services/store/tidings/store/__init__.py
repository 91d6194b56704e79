"""The bookstore backend: the store's own system (orders, catalogue) that the bot's tools ask.

A stand-in for a real store's system with a documented HTTP contract (docs/store-api.yaml):
a store with its own system implements that contract and points ORDERS_API_URL /
STORE_API_URL at it instead.
"""

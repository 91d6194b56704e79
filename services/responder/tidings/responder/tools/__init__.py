"""Tools: answers from the store's own system, tried before the answer engine.

- `OrderStatusTool` (orders.py): an order's real status, for whoever proves it is theirs.
- `RecommendationTool` (recommendations.py): up to three catalogue books that fit a request.

Both talk to the store API (`tidings.common.store_api`, docs/store-api.yaml); their answers
stream with source `tool` and the tool's name, and are counted per tool (base.py).
"""

from tidings.responder.tools.base import ToolAnswer
from tidings.responder.tools.order_text import find_order_number
from tidings.responder.tools.orders import OrderStatusTool
from tidings.responder.tools.recommendations import RecommendationTool

__all__ = ["OrderStatusTool", "RecommendationTool", "ToolAnswer", "find_order_number"]

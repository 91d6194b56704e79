"""Tools: answers looked up in other systems before the FAQ and the LLM are asked."""

from tidings.responder.tools.orders import OrderStatusTool, ToolAnswer, find_order_number

__all__ = ["OrderStatusTool", "ToolAnswer", "find_order_number"]

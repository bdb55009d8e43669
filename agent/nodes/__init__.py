"""Graph nodes: one module each (verbs), plus routers."""
from agent.nodes.debug import debug, revise
from agent.nodes.execute import execute
from agent.nodes.grade import grade
from agent.nodes.implement import implement
from agent.nodes.ingest import ingest
from agent.nodes.plan import plan
from agent.nodes.report import report
from agent.nodes.reproduce import reproduce
from agent.nodes.review import review_code, review_plan
from agent.nodes.routes import (after_debug, after_execute, after_plan, after_reproduce, after_review_code,
                                after_review_plan, stop)

__all__ = ["after_debug", "after_execute", "after_plan", "after_reproduce", "after_review_code", "after_review_plan",
           "debug", "execute", "grade", "implement", "ingest", "plan", "report", "reproduce", "review_code",
           "review_plan", "revise", "stop"]

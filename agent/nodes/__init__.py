"""Graph nodes around the tool loop: one module each (verbs), plus routers."""
from agent.nodes.code import finish_code, start_code
from agent.nodes.grade import grade
from agent.nodes.ingest import ingest
from agent.nodes.plan import plan
from agent.nodes.report import report
from agent.nodes.reproduce import reproduce
from agent.nodes.review import review_code, review_plan
from agent.nodes.routes import after_plan, after_review_code, after_review_plan, stop

__all__ = ["after_plan", "after_review_code", "after_review_plan", "finish_code", "grade", "ingest", "plan", "report",
           "reproduce", "review_code", "review_plan", "start_code", "stop"]

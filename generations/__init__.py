"""Generations: model answers that run on the server whether or not anyone watches, stored in
the broker token by token, so any viewer on any worker or instance can join, resume or cancel
them (see `record.py` for the topic's layout)."""

from .record import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    GenerationState,
    is_generation_id,
    parse_resume_id,
)
from .runner import Run, RunLimits
from .service import Generations, UnknownGeneration
from .view import EXPIRED, GenerationView
from .ws_chat import WatchedGeneration

__all__ = ["CANCELLED", "DONE", "EXPIRED", "FAILED", "RUNNING", "GenerationState",
           "GenerationView", "Generations", "Run", "RunLimits", "UnknownGeneration",
           "WatchedGeneration", "is_generation_id", "parse_resume_id"]

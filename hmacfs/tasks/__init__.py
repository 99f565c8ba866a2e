"""Persistent background tasks: submitted through the API or by other services, run by ``hmacfs worker``."""

from hmacfs.tasks.context import TaskContext, TaskError, TaskStopped
from hmacfs.tasks.registry import task_handler
from hmacfs.tasks.service import cancel_task, get_task, pause_task, resume_task, submit_task

__all__ = [
    "TaskContext",
    "TaskError",
    "TaskStopped",
    "cancel_task",
    "get_task",
    "pause_task",
    "resume_task",
    "submit_task",
    "task_handler",
]

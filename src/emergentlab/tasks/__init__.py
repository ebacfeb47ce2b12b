"""Tasks: typed examples, synthetic generators, few-shot prompts, loaders for BIG-bench and JSONL."""

from emergentlab.tasks.base import Example, Task
from emergentlab.tasks.prompts import build_prompt, variant_name
from emergentlab.tasks.synthetic import TASKS, make_task, split_of, train_lines

__all__ = ["TASKS", "Example", "Task", "build_prompt", "make_task", "split_of", "train_lines", "variant_name"]

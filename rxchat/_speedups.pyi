"""Types of the optional C extension (rxchat/_speedups.c)."""

from typing import Any

K_STR: int
K_INT: int
K_FLOAT: int
K_MODEL: int
K_LIST_MODEL: int
K_LIST_INT: int
K_DICT: int
K_DEFER: int
K_NULLABLE: int
K_REQUIRED: int
K_FRESH_LIST: int

class Plan:
    def __init__(self, cls: type, fields: tuple[tuple[str, int, Plan | None, Any], ...]) -> None: ...

def build_all(plan: Plan, payloads: list[str], /) -> list[Any]: ...

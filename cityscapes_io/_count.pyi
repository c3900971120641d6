# Types of the optional C extension cityscapes_io._count (cityscapes_io/_count.c).
from typing import Any, Optional

def count_pairs(a: Any, a_size: int, b: Optional[Any], b_size: int, nb: int, a_min: int, out: Any) -> int: ...

from typing import Any, Optional

import pandas

POOLING_OPTIONS: dict[str, str]

def forecast(
    frame: Any,
    *,
    horizon: int,
    id: Any = ...,
    time: str = ...,
    value: str = ...,
    by: Any = ...,
    partitions: Optional[int] = ...,
    summary: bool = ...,
    **options: Any,
) -> Any: ...
def evaluate_by(
    frame: Any,
    *,
    by: Any,
    errors: str = ...,
    partitions: Optional[int] = ...,
    **evaluate_options: Any,
) -> pandas.DataFrame: ...

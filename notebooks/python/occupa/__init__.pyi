from typing import Any, Iterable, Optional

class OccupaError(Exception): ...

__version__: str

def evaluate(
    table: Any,
    *,
    outcome: str,
    method: str,
    treatment: Optional[str] = ...,
    covariates: Iterable[str] = ...,
    estimand: Optional[str] = ...,
    **options: Any,
) -> dict[str, Any]: ...
def cluster(
    table: Any,
    *,
    columns: Iterable[str],
    method: str,
    k: Optional[int] = ...,
    k_range: Optional[str] = ...,
    seed: int = ...,
    **options: Any,
) -> dict[str, Any]: ...
def forecast(
    table: Any,
    *,
    horizon: int,
    id: Any = ...,
    time: str = ...,
    value: str = ...,
    model: str = ...,
    levels: Iterable[float] = ...,
    **options: Any,
) -> Any: ...

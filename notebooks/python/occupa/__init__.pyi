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
def anonymise_table(
    table: Any,
    *,
    qi: Iterable[str],
    k: int,
    sensitive: Optional[str] = ...,
    builtin: Optional[dict[str, str]] = ...,
    hierarchies: Optional[str] = ...,
    drop: Iterable[str] = ...,
    keep: Iterable[str] = ...,
    quarantine: bool = ...,
    **options: Any,
) -> tuple[Any, dict[str, Any]]: ...

class Profile:
    report: dict
    model: str
    def score(self, table: Any) -> Any: ...

def profile_fit(
    table: Any,
    *,
    covariates: Iterable[str],
    validate_from: str,
    outcome: str = ...,
    model: str = ...,
    period: str = ...,
    **options: Any,
) -> Profile: ...

class Release:
    path: str
    persons: Any
    employment: Any
    services: Any
    report: dict[str, Any]
    dictionary: str

def read_release(path: Any, *, backend: str = ...) -> Release: ...

from . import study as study

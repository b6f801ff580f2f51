"""The compiled engine; call it through the functions of ``occupa``."""

class OccupaError(Exception):
    """An error the Occupa engine reported; the message says which and what to do."""

def evaluate(table: object, spec_json: str) -> str: ...
def cluster(table: object, spec_json: str) -> str: ...
def forecast(table: object, spec_json: str) -> str: ...
def anonymise_table(
    table: object, spec_json: str, quarantine: bool
) -> tuple[
    str, list[str], list[tuple[str, list[str]]], list[int], list[tuple[int, str, str]]
]: ...
def study_run(
    spec: str,
    data: str,
    out: str,
    who: str | None = ...,
    tenant: str | None = ...,
    lang: str = ...,
) -> None: ...
def version() -> str: ...

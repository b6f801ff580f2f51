"""Studies from Python: a study file run as ``occupa study run`` runs it, with the same
access rules, protection, audit line and outputs."""

from __future__ import annotations

import json as _json
import os as _os
import tempfile as _tempfile
from typing import Any, Optional

from . import _occupa


def run(
    spec: Any,
    *,
    data: Any,
    out: Any,
    tenant: Optional[str] = None,
    who: Optional[str] = None,
    lang: str = "it",
) -> dict:
    """Runs the study ``spec`` (a TOML file's path, or its text) on ``data`` (a research
    release; or a store, for its own staff, with ``tenant=``: the spec must name the same
    tenant) into the new folder ``out``: ``results.json``, one CSV per table, the report
    (HTML, PDF) and ``manifest.json``, written at once (and ``spec.toml`` when the spec was
    given as text, so that the folder says what ran; the manifest holds its hash). Every
    run is audited in the data's log under ``who`` (default: the user), refusals too; a
    refusal raises :class:`occupa.OccupaError` and writes nothing else. Returns
    ``results.json`` as a dict.
    """
    text = str(spec)
    if "\n" in text or not _os.path.exists(text):
        if "\n" not in text:
            raise _occupa.OccupaError(f"{text}: no such study file")
        # The runner reads and hashes a file; the text is kept beside the results' parent.
        parent = _os.path.dirname(_os.path.abspath(_os.fspath(out))) or "."
        _os.makedirs(parent, exist_ok=True)
        with _tempfile.NamedTemporaryFile(
            "w", suffix=".toml", prefix=".study-spec-", dir=parent, delete=False, encoding="utf-8"
        ) as f:
            f.write(text)
            path = f.name
        try:
            _occupa.study_run(path, _os.fspath(data), _os.fspath(out), who, tenant, lang)
        finally:
            _os.unlink(path)
        with open(_os.path.join(_os.fspath(out), "spec.toml"), "w", encoding="utf-8") as f:
            f.write(text)
    else:
        _occupa.study_run(text, _os.fspath(data), _os.fspath(out), who, tenant, lang)
    with open(_os.path.join(_os.fspath(out), "results.json"), encoding="utf-8") as f:
        return _json.load(f)

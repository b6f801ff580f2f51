"""Executes every notebook in this folder top to bottom, as CI does (`.ci/run`), and keeps
the executed copies and their figures for a person to look at.

    python notebooks/execute.py OUT_DIR [NAME ...]

Each notebook runs in a fresh kernel with this folder as its working directory (the
committed notebooks carry no outputs). A cell that raises, an assertion included, fails
the run: the notebooks assert their key numbers, so a notebook that drifts fails here.
The executed notebooks go to OUT_DIR, each figure to OUT_DIR/figures/<notebook>-<n>.png.
"""

from __future__ import annotations

import base64
import re
import sys
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    (out / "figures").mkdir(parents=True, exist_ok=True)
    wanted = set(sys.argv[2:])
    notebooks = sorted(p for p in HERE.glob("*.ipynb") if not wanted or p.stem in wanted)
    if not notebooks:
        print(f"no notebook in {HERE} matches {sorted(wanted)}", file=sys.stderr)
        return 2
    failed = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        client = nbclient.NotebookClient(
            nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
        )
        try:
            client.execute()
            status = "ok"
        except nbclient.exceptions.CellExecutionError as e:
            failed.append(path.name)
            # The traceback without the terminal's colours.
            status = "FAILED\n" + re.sub(r"\x1b\[[0-9;]*m", "", str(e))[-3000:]
        seconds = time.perf_counter() - started
        nbformat.write(nb, out / path.name)
        figures = 0
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png:
                    figures += 1
                    (out / "figures" / f"{path.stem}-{figures}.png").write_bytes(
                        base64.b64decode(png)
                    )
        print(f"{path.name}: {status} ({seconds:.1f} s, {figures} figures)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

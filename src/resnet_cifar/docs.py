"""Rewrite the tables in the docs that are made from the code (`make docs`), so they cannot drift from it.

Each table sits between two marker comments in its Markdown file; everything
outside the markers is left as written.
"""
from __future__ import annotations

import sys
from pathlib import Path

from resnet_cifar.config import settings_table

BEGIN = "<!-- settings table: made by `make docs` from src/resnet_cifar/config.py -->"
END = "<!-- end of settings table -->"


def with_table(text: str, table: str) -> str:
    """`text` with whatever stands between the markers replaced by `table`."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + table + text[end:]


def main(docs: Path) -> None:
    path = docs / "training.md"
    path.write_text(with_table(path.read_text(), settings_table()))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs"))

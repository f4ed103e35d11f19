"""Real English text that ships with Python, chunked into passages: offline and deterministic.

Python's own documentation (`pydoc_data.topics`) comes first, then standard-library
docstrings, read with `ast` so no module is imported.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from pydoc_data.topics import topics

CHUNK_CHARS = 400
MIN_CHUNK_CHARS = 80
SKIPPED_STDLIB_PARTS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo"}


@dataclass(frozen=True)
class Document:
    """One source document: a documentation topic or a module's docstrings."""

    title: str
    source: str
    text: str


def _documentation_topics() -> Iterator[Document]:
    for name in sorted(topics):
        yield Document(title=f"Python reference: {name}", source=f"pydoc:{name}", text=topics[name])


def _stdlib_docstrings() -> Iterator[Document]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if SKIPPED_STDLIB_PARTS & set(path.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except SyntaxError:
            continue
        docstrings = [
            doc
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and (doc := ast.get_docstring(node))
            and len(doc) >= MIN_CHUNK_CHARS
        ]
        if docstrings:
            module = ".".join(path.relative_to(stdlib).with_suffix("").parts)
            yield Document(
                title=f"Module {module}", source=f"stdlib:{module}", text="\n\n".join(docstrings)
            )


def documents() -> Iterator[Document]:
    """All documents in a fixed order."""
    yield from _documentation_topics()
    yield from _stdlib_docstrings()


def chunk(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split on paragraphs and pack them into passages of about `size` characters."""
    passages: list[str] = []
    current = ""
    for paragraph in (" ".join(p.split()) for p in text.split("\n\n")):
        if not paragraph:
            continue
        while len(paragraph) > size * 2:
            cut = paragraph.rfind(" ", 0, size)
            cut = cut if cut > 0 else size
            passages.append(paragraph[:cut])
            paragraph = paragraph[cut:].strip()
        if current and len(current) + len(paragraph) > size:
            passages.append(current)
            current = ""
        current = f"{current} {paragraph}".strip()
    if current:
        passages.append(current)
    return [passage for passage in passages if len(passage) >= MIN_CHUNK_CHARS]

"""MkDocs hooks of ``make docs`` (mkdocs.yml names this file): the README is the site's home page, and a link from a
page to a file of the repository outside docs/ (an experiment's script, a label map) becomes its text.

MkDocs checks only links between the pages it builds; it calls any other link "not found", and ``strict: true`` would
fail on the guide's links to ``experiments/*.py``. Here such a link whose file exists loses its target (the site does
not carry the file; the link's text is its path), one to the README points at the home page, and one to a file that
does not exist is a warning, so the strict build still fails on a broken link anywhere.

:class:`DocstringMarkdown` (a griffe extension, named in mkdocs.yml's mkdocstrings options) reads the docstrings'
reST habits as Markdown: ``>>>`` examples at the margin (outside an ``Examples:`` section Markdown reads them as
quotes) become code blocks, and Sphinx roles (``:func:`~envsound.recipes.api.train` ``) code (``train``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import griffe
from mkdocs.structure.files import File

log = logging.getLogger(f"mkdocs.plugins.{__name__}")  # under "mkdocs": strict mode counts its warnings

# [text](target#anchor) and ![alt](target); a target with a space or a title is not written in these pages
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s#]*)(#[^)\s]*)?\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)\.?([^`]+)`")


def on_files(files, config):
    """Add README.md, its links made relative to docs/, as the home page (index.md)."""
    docs = Path(config.docs_dir).resolve()
    readme = docs.parent / "README.md"

    def rebase(match: re.Match) -> str:
        bang, text, target, anchor = match.groups()
        if not target or EXTERNAL.match(target) or target.startswith("/"):
            return match.group(0)
        return f"{bang}[{text}]({Path(os.path.relpath(docs.parent / target, docs)).as_posix()}{anchor or ''})"

    files.append(File.generated(config, "index.md", content=LINK.sub(rebase, readme.read_text(encoding="utf-8"))))
    return files


def on_page_markdown(markdown, page, config, files):
    """A link out of docs/: to the README -> the home page; to a file that exists -> its text; else a warning."""
    docs = Path(config.docs_dir).resolve()
    here = (docs / page.file.src_uri).parent

    def outside(match: re.Match) -> str:
        bang, text, target, anchor = match.groups()
        if not target or EXTERNAL.match(target) or target.startswith("/"):
            return match.group(0)
        path = (here / target).resolve()
        if path.is_relative_to(docs):
            return match.group(0)  # MkDocs checks it
        if path == docs.parent / "README.md":
            return f"{bang}[{text}]({Path(os.path.relpath(docs / 'index.md', here)).as_posix()}{anchor or ''})"
        if not path.exists():
            log.warning("Doc file '%s' links to '%s', which does not exist in the repository.", page.file.src_uri,
                        target)
        return match.group(0) if bang else text

    return LINK.sub(outside, markdown)


class DocstringMarkdown(griffe.Extension):
    """A run of lines at a docstring's margin from a ``>>>`` line to the next blank line becomes a fenced block; a
    Sphinx role becomes code of its target (its last part with ``~``)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        obj.docstring.value = ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", obj.docstring.value)
        if ">>>" not in obj.docstring.value:
            return
        lines, inside, fence = [], False, False
        for line in obj.docstring.value.splitlines():
            if line.startswith("```"):
                fence = not fence
            elif not fence and not inside and line.startswith(">>>"):
                lines += ["", "```pycon"] if lines and lines[-1].strip() else ["```pycon"]
                inside = True
            elif inside and not line.strip():
                lines.append("```")
                inside = False
            lines.append(line)
        obj.docstring.value = "\n".join(lines + (["```"] if inside else []))

"""The documentation (docs/, README.md) is tested like code.

- The CLI reference (docs/cli.md) is generated from the parser by cog and must be current.
- The site builds with ``mkdocs build --strict`` (no warning: a broken link or a docstring
  mkdocstrings cannot read fails it).
- Every ``console`` example runs: the ``$ `` commands of a page run in order in a fresh
  directory (``samples/`` beside them, the default ``sqlite:///l2rules.db`` in it), and print
  what the page shows. Alignment, timestamps and durations are not compared; a line ``...``
  stands for any lines. ``$ echo $?`` checks the previous command's exit code.
- Every ``python`` example runs, a page's blocks in order in one namespace, in that directory.
- ``<!-- docs-test: fresh -->`` before a block starts a new directory and catalog from it on.
- Examples that cannot run here (a crontab, a systemd unit, an Airflow task, a run held by
  another process) are marked ``<!-- docs-test: parse-only -->``: each ``l2rules`` command in
  them must still parse with the CLI's own parser.

``L2RULES_UPDATE_DOCS=1 pytest tests/test_docs.py`` writes the outputs the commands give into
the pages (blocks with ``...`` lines are left as they are): review the diff, then commit.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from l2rules import config
from l2rules.cli import build_parser

from .conftest import IN_CI, REPO
from .test_fits import fits_from_pool

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [REPO / "README.md"]
BIN = Path(sys.executable).parent
UPDATE = os.environ.get("L2RULES_UPDATE_DOCS") == "1"
SHOWN_PG = "postgresql://postgres@127.0.0.1:5432/test"
FENCE = re.compile(r"(?P<marker><!-- docs-test: (?P<mode>[\w-]+) -->\n *)?```(?P<lang>[\w-]*)\n(?P<body>.*?)```",
                   re.S)


@dataclass
class Command:
    text: str
    output: list[str] = field(default_factory=list)


@dataclass
class Block:
    page: Path
    lang: str
    mode: str | None
    body: str
    start: int  # offset of the body in the page
    shown: str | None = None  # a python block's output: the text block right after it
    indent: str = ""  # a block in a list item is indented

    @property
    def line(self) -> int:
        return self.page.read_text()[:self.start].count("\n") + 1

    def commands(self) -> list[Command]:
        commands: list[Command] = []
        lines = iter(self.body.rstrip("\n").split("\n"))
        for line in lines:
            if line.startswith("$ "):
                text = line[2:]
                while text.endswith("\\"):
                    text = text[:-1] + next(lines)
                commands.append(Command(text))
            elif commands:
                commands[-1].output.append(line)
        return commands


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found, previous, previous_end = [], None, 0
    for match in FENCE.finditer(text):
        body = textwrap.dedent(match["body"])
        indent = match["body"][:len(match["body"]) - len(match["body"].lstrip(" "))]
        block = Block(page, match["lang"], match["mode"], body, match.start("body"), indent=indent)
        if (previous is not None and previous.lang == "python" and block.lang == "text"
                and not text[previous_end:match.start()].strip()):
            previous.shown = block.body
        found.append(block)
        previous, previous_end = block, match.end()
    return found


def l2rules_commands(text: str, quoted: bool = False) -> list[list[str]]:
    """The argument lists of the ``l2rules`` commands in a shell line, a crontab, a unit, or (``quoted``)
    the strings of Python code."""
    found = []
    start = r"[\"']" if quoted else r"(?:^|[\s/\"'])"
    for match in re.finditer(start + r"l2rules ((?:[^\n#&|;\"]|\"[^\"\n]*\")*)", text):
        words = shlex.split(match[1].replace("\\\n", " "))
        if words and not words[0].startswith("<"):
            found.append(words)
    return found


# -- normalising outputs ---------------------------------------------------------------------------
_VOLATILE = [
    (re.compile(r"(?:\d+ (?:d|h|min|s) )+ago"), "<ago>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?"), "<time>"),
    (re.compile(r"/tmp/tmp\.\w+"), "/tmp/tmp.X"),
    (re.compile(r"\bpid \d+ on \S+"), "pid PID on HOST"),
    (re.compile(r'"pid": \d+'), '"pid": PID'),
    (re.compile(r'"host": "[^"]*"'), '"host": "HOST"'),
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:s|ms|seconds|minutes?|hours?)\b"), "<duration>"),
    (re.compile(r"l2rules_docs_\w+"), "test"),
]


def normalised(line: str) -> str:
    for pattern, replacement in _VOLATILE:
        line = pattern.sub(replacement, line)
    line = re.sub(r"-{2,}", "--", line)
    return re.sub(r"\s+", " ", line).strip()


def matches(shown: list[str], got: list[str]) -> bool:
    """``shown`` (with ``...`` lines for any lines) against ``got``, both normalised."""
    pattern = []
    for line in shown:
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(re.escape(normalised(line)) + r"\n")
    text = "".join(normalised(line) + "\n" for line in got)
    return re.fullmatch("".join(pattern), text) is not None


def trimmed(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


# -- the sandbox -----------------------------------------------------------------------------------
class Sandbox:
    def __init__(self, root: Path, pg_url: str | None) -> None:
        self.root = root
        root.mkdir()
        (root / "samples").symlink_to(REPO / "samples")
        # the FITS examples' directory: a header-only file per exposure of a sample pool
        fits_from_pool("pool_002_image_miri.csv", root / "miri_image")
        self.pg_url = pg_url
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
        self.env.pop("L2RULES_DATABASE_URL", None)
        self.last_code = 0
        # a page starts where the getting-started page leaves a reader: a catalog at head
        subprocess.run(["l2rules", "init"], cwd=root, env=self.env, check=True, capture_output=True)

    def run(self, command: str) -> list[str]:
        if command.strip() == "echo $?":
            return [str(self.last_code)]
        if self.pg_url:
            command = command.replace(SHOWN_PG, self.pg_url)
        proc = subprocess.run(["bash", "-c", command], cwd=self.root, env=self.env, capture_output=True,
                              text=True, timeout=600)
        self.last_code = proc.returncode
        out = (proc.stdout + proc.stderr).rstrip("\n")
        if self.pg_url:
            out = out.replace(self.pg_url.replace("postgresql://", "postgresql+psycopg://"),
                              SHOWN_PG.replace("postgresql://", "postgresql+psycopg://"))
            out = out.replace(self.pg_url, SHOWN_PG)
        return out.split("\n") if out else []


def _pages_with(lang: str) -> list[Path]:
    return [page for page in PAGES if any(b.lang == lang and b.mode != "parse-only" for b in blocks(page))]


@pytest.mark.parametrize("page", _pages_with("console"), ids=lambda p: p.name)
def test_console_examples_print_what_the_page_shows(page, tmp_path, postgres):
    needs_pg = SHOWN_PG in page.read_text()
    pg_url = None
    if needs_pg:
        reason = postgres.available()
        if reason:
            (pytest.fail if IN_CI else pytest.skip)(f"{page.name} shows PostgreSQL: {reason}")
        pg_url = postgres.create().replace("postgresql+psycopg://", "postgresql://")
    sandbox = Sandbox(tmp_path / "0", pg_url)
    text = page.read_text()
    failures, edits = [], []
    for number, block in enumerate(blocks(page)):
        if block.lang != "console" or block.mode == "parse-only":
            continue
        if block.mode == "fresh":
            sandbox = Sandbox(tmp_path / str(number), pg_url)
        for command in block.commands():
            got = sandbox.run(command.text)
            shown = trimmed(command.output)
            if not matches(shown, got):
                failures.append(f"{page.name}:{block.line}: $ {command.text}\n--- shown\n" + "\n".join(shown)
                                + "\n--- got\n" + "\n".join(got))
                if UPDATE and not any(line.strip() == "..." for line in shown):
                    edits.append((block, command, got))
    if UPDATE and edits:
        for block, command, got in edits:
            blank = len(command.output) - len(trimmed(command.output))  # the space before the next command
            old = "".join(block.indent + line + "\n" for line in ["$ " + command.text, *command.output])
            new = "".join((block.indent + line).rstrip() + "\n"
                          for line in ["$ " + command.text, *got, *[""] * blank])
            text = text.replace(old, new, 1)
        page.write_text(text)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("page", _pages_with("python"), ids=lambda p: p.name)
def test_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.setattr(config, "_engines", {})  # (each example's engines its own)
    (tmp_path / "samples").symlink_to(REPO / "samples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("L2RULES_DATABASE_URL", raising=False)
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks(page):
        if block.lang == "python" and block.mode != "parse-only":
            code = compile(block.body, f"{page.name}:{block.line}", "exec")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(code, namespace)  # the page's own example
            if block.shown is not None:
                got = printed.getvalue().rstrip("\n").split("\n")
                assert matches(trimmed(block.shown.rstrip("\n").split("\n")), got), \
                    f"{page.name}:{block.line} printed:\n" + "\n".join(got)


def test_no_console_example_cuts_an_l2rules_table():
    """The examples choose their columns (``--columns``) rather than cut l2rules' lines: ``cut`` made
    the README's tables fit a page at the price of showing half a column name."""
    cutting = [f"{block.page.name}:{block.line}: {command.text}" for page in PAGES for block in blocks(page)
               if block.lang == "console" for command in block.commands()
               if "l2rules" in command.text and re.search(r"\|\s*cut\b", command.text)]
    assert cutting == []


def test_every_l2rules_command_in_the_docs_parses():
    parser = build_parser()
    checked = 0
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in {"console", "shell", "cron", "ini", "python", "yaml"}:
                continue
            lines = [c.text for c in block.commands()] if block.lang == "console" else [block.body]
            for line in lines:
                for argv in l2rules_commands(line, quoted=block.lang == "python"):
                    try:
                        parser.parse_args(argv)
                    except SystemExit as exc:
                        if exc.code != 0:
                            pytest.fail(f"{page.name}:{block.line}: l2rules {shlex.join(argv)} does not parse")
                    checked += 1
    assert checked > 40


def test_cli_reference_is_generated_from_the_parser():
    """docs/cli.md is cog's output: ``cog -r docs/cli.md`` after a change to the CLI."""
    proc = subprocess.run([sys.executable, "-m", "cogapp", "--check", "--diff", str(DOCS / "cli.md")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_command_is_in_the_cli_reference():
    text = (DOCS / "cli.md").read_text()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name in subparsers.choices:
        assert f"## l2rules {name}" in text, name


def test_the_site_builds_without_warnings(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(BIN))
    assert mkdocs, "mkdocs comes with the dev extra"
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "api" / "index.html").exists()


def test_readme_is_short_and_links_the_site():
    text = (REPO / "README.md").read_text()
    assert len(text.encode()) < 8 * 1024
    for page in ["getting-started", "operators", "analysts", "rules", "cli", "api"]:
        assert f"docs/{page}.md" in text, page

"""One meaning per flag and one shape per value across commands (issue 14): a run's ``inputs``,
``--format`` as the data format, and every command's --help example."""

from __future__ import annotations

import argparse
import io
import json
import shlex

import pandas as pd

from l2rules.cli import build_parser, examples, main, parse_args
from l2rules.runs import INPUTS_SEPARATOR, joined_inputs, record, runs

from .runs_helpers import write_pool

# A run's inputs: a list in the library and in JSON; the paths joined by ';' in CSV and the table.

def _two_pools(tmp_path):
    (tmp_path / "in box").mkdir()  # a space in a path: the joined form must keep it whole
    return [str(write_pool(tmp_path / "in box" / "a.csv", 6, prefix="jwa")),
            str(write_pool(tmp_path / "in box" / "b.csv", 6, prefix="jwb"))]


def test_inputs_is_one_list_in_the_library_and_in_json(db, tmp_path, capsys):
    pools = _two_pools(tmp_path)
    assert main(["--db", db, "run", *pools, "--print", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["inputs"] == pools
    assert record(db, printed["run_id"])["inputs"] == pools
    assert list(runs(db)["inputs"]) == [pools]
    assert main(["--db", db, "runs", "--format", "json"]) == 0
    assert [r["inputs"] for r in json.loads(capsys.readouterr().out)] == [pools]


def test_inputs_is_one_joined_cell_in_csv_and_the_table(db, tmp_path, capsys):
    pools = _two_pools(tmp_path)
    joined = INPUTS_SEPARATOR.join(pools)
    assert joined_inputs(pools) == joined and joined_inputs([]) == ""
    assert main(["--db", db, "run", *pools, "--print", "csv"]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str)
    assert printed["inputs"].tolist() == [joined]
    assert main(["--db", db, "run", "--print", "csv"]) == 0  # a run without inputs: an empty cell
    assert pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)["inputs"].tolist() \
        == [""]
    assert main(["--db", db, "runs", "--format", "csv"]) == 0
    listed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)
    assert listed["inputs"].tolist() == [joined, ""]
    assert [cell.split(INPUTS_SEPARATOR) if cell else [] for cell in listed["inputs"]] == [pools, []]
    for argv in (["run", *pools, "--print", "table"], ["runs"]):
        assert main(["--db", db, *argv]) == 0
        assert joined in capsys.readouterr().out, argv


# --format is the data's format everywhere; `run` prints its record with --print.

def test_run_format_is_the_format_of_the_output_and_print_the_record(db, tmp_path, capsys):
    pool = str(write_pool(tmp_path / "p.csv", 6))
    out = tmp_path / "items-{run_id}"
    assert main(["--db", db, "run", pool, "--output", str(out), "--format", "json", "--print", "csv"]) == 0
    captured = capsys.readouterr()
    printed = pd.read_csv(io.StringIO(captured.out))
    assert printed["items_created"].tolist() == [4] and captured.err == ""
    assert len(json.loads((tmp_path / f"items-{printed['run_id'][0]}").read_text())) == 4


def test_run_old_spellings_are_refused_or_warned(db, tmp_path, capsys):
    pool = str(write_pool(tmp_path / "p.csv", 6))
    # --format for the record (now --print): refused, naming the new spelling; nothing is run
    assert main(["--db", db, "run", pool, "--format", "json"]) == 2
    assert "to print the run record, --print json" in capsys.readouterr().err
    assert main(["--db", db, "run", pool, "--output", str(tmp_path / "o.csv"), "--format", "json"]) == 2
    assert "is csv by its suffix" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert runs(db).empty
    # --output-format (now --format): works, with a deprecation warning
    assert main(["--db", db, "run", pool, "--output", str(tmp_path / "o.out"), "--output-format", "json"]) == 0
    assert "--output-format is deprecated" in capsys.readouterr().err
    assert len(json.loads((tmp_path / "o.out").read_text())) == 4
    assert main(["--db", db, "run", "--output", str(tmp_path / "o.out"), "--output-format", "json",
                 "--format", "csv"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_format_means_the_data_format_in_every_command():
    def commands(parser, prefix=()):
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    yield from commands(sub, (*prefix, name))
                return
        yield prefix, parser

    for name, parser in commands(build_parser()):
        flags = {s: a for a in parser._actions for s in a.option_strings}
        if "--format" in flags:  # the formats of data (table, csv, json, jsonl, parquet), never of something else
            assert set(flags["--format"].choices) <= {"table", "csv", "json", "jsonl", "parquet"}, name
            assert "record" not in (flags["--format"].help or ""), name
    run = dict(commands(build_parser()))[("run",)]
    assert "--print" in run._option_string_actions and "--format" in run._option_string_actions


# Every command: one handler named after the library function it calls, and an example in its --help that parses.

def _leaves(parser, prefix=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaves(sub, (*prefix, name))


COMMANDS = {
    ("init",): "init", ("db", "upgrade"): "init", ("db", "downgrade"): "downgrade", ("db", "current"): "current",
    ("db", "history"): "revisions", ("rules", "list"): "rules", ("rules", "show"): "conditions",
    ("rules", "history"): "history",
    ("rules", "tables"): "tables", ("rules", "releases"): "releases", ("rules", "rows"): "table_rows",
    ("rules", "versions"): "versions", ("rules", "diff"): "diff_all", ("rules", "check"): "check_all",
    ("rules", "revision"): "write_revision", ("load",): "load", ("pool",): "make_pool", ("worklist",): "worklist",
    ("impact",): "impact", ("explain",): "explain", ("asn",): "asn", ("unmatched",): "unmatched",
    ("rejections",): "rejections", ("run",): "run", ("runs",): "runs", ("report",): "report",
}


def test_every_command_has_one_handler_named_after_its_library_function():
    import l2rules
    from l2rules import association, catalog, inventory, migrate, report, runs, worklist
    from l2rules.inventory import fits

    leaves = dict(_leaves(build_parser()))
    assert set(leaves) == set(COMMANDS)
    library = (l2rules, association, catalog, inventory, fits, migrate, report, runs, worklist)
    for command, name in COMMANDS.items():
        handler = leaves[command].get_default("handler")
        assert handler.__name__ == name and handler.__module__ == "l2rules.cli", command
        assert any(callable(getattr(module, name, None)) for module in library), (command, name)


def test_every_command_help_has_an_example_that_parses():
    parser = build_parser()
    for command, leaf in _leaves(parser):
        lines = examples(leaf)
        assert lines, command
        text = leaf.format_help()
        assert "Example" in text and all(f"\n  {line}\n" in text for line in lines), command  # each line kept whole
        for line in lines:  # parsed as main parses it, into this command
            assert parse_args(shlex.split(line)[1:]).handler is leaf.get_default("handler"), line
    for group in ("rules", "db"):  # a group's help has examples too
        sub = parser._subparsers._group_actions[0].choices[group]
        assert examples(sub) and all(parse_args(shlex.split(line)[1:]).command == group for line in examples(sub))


def test_an_example_line_stays_one_line_in_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    (line,) = examples(dict(_leaves(build_parser()))[("worklist",)])
    assert f"  {line}\n" in dict(_leaves(build_parser()))[("worklist",)].format_help()


def test_no_flag_is_taken_for_a_longer_one(capsys):
    """argparse's abbreviations are off in every parser: `asn ... --version-i` is refused, not read as
    --version-id (the files would get a time stamp in their names; `--version` is asn_generate's own)."""
    parser = build_parser()
    assert not parser.allow_abbrev and all(not leaf.allow_abbrev for _command, leaf in _leaves(parser))
    for line in (["asn", "p.csv", "--output", "d", "--version-i"], ["asn", "p.csv", "--dry"],
                 ["worklist", "--out", "w.csv"],
                 ["rules", "list", "--instr", "MIRI"]):
        try:
            parse_args(line)
        except SystemExit as exc:
            assert exc.code == 2, line
        else:
            raise AssertionError(f"{line} parsed")
        assert "unrecognized arguments" in capsys.readouterr().err, line

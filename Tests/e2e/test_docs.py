"""The documentation users read: the man page renders without warnings, and every option the
command line accepts is described in the man page, the README and --help."""
import os
import re
import subprocess

from mossaic import REPO, run

MAN = REPO / "man" / "mossaicfs.8"


def accepted_options():
    """Every -o key the mount accepts, read from its source: the declarations in
    MountConfiguration (which the parser and --help are generated from) and the S3 store's."""
    src = (REPO / "Sources" / "MossaicCore" / "MountConfiguration.swift").read_text()
    own = set(re.findall(r'MountOption\("([a-z_]+)"', src))
    assert {"cache_dir", "mem_buffer_size", "snapshot"} <= own, "MountConfiguration.declarations not found"
    cfg = (REPO / "Sources" / "MossaicObjectStore" / "S3Configuration.swift").read_text()
    names = re.search(r"optionNames[^=]*=\s*\[([^\]]*)\]", cfg)
    s3 = set(re.findall(r'"([a-z_]+)"', names.group(1))) if names else set()
    assert s3, "S3Configuration.optionNames not found"
    return own | s3


def test_man_page_renders_without_warnings():
    r = subprocess.run(["man", "--warnings", "-l", str(MAN)], capture_output=True, text=True,
                       env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0
    assert r.stderr == "", r.stderr
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "SEMANTICS", "ERRORS",
                    "ENVIRONMENT", "FILES", "EXAMPLES", "EXIT STATUS", "SEE ALSO"]:
        assert f"\n{section}\n" in r.stdout, section


def test_every_option_is_documented():
    man = subprocess.run(["man", "-l", str(MAN)], capture_output=True, text=True, env={"MANWIDTH": "200", "PATH": "/usr/bin:/bin"}).stdout
    readme = (REPO / "README.md").read_text()
    helptext = run("mount", "--help").stdout
    options = accepted_options()
    assert {"cache_dir", "endpoint", "credentials"} <= options
    for option in sorted(options):
        assert option in man, f"{option} missing from man page"
        assert option in readme, f"{option} missing from README"
        assert option in helptext, f"{option} missing from mount --help"


# -- --help, the man page and the README agree on the commands and their options ---------------

WIDTH = 80


def help_text(*command, columns=WIDTH):
    env = dict(os.environ, COLUMNS=str(columns))
    return run(*command, "--help", env=env).stdout


def subcommands():
    """The subcommands `mossaicfs --help` lists (so new ones are checked without changing this)."""
    text = help_text()
    section = text.split("\nSUBCOMMANDS:\n", 1)[1].split("\n\n", 1)[0]
    names = [m.group(1) for m in re.finditer(r"^  ([a-z][a-z-]*)\b", section, re.M)]
    assert {"mount", "format", "status", "fsck", "gc", "snapshots", "snapshot"} <= set(names), names
    return names


def command_options(command):
    """The options of `mossaicfs COMMAND --help` (OPTIONS section), each as its list of spellings
    (`["-f", "--foreground"]`), without --help and --version."""
    section = help_text(command).split("\nOPTIONS:\n", 1)[1].split("\n\n", 1)[0]
    options = []
    for line in section.splitlines():
        m = re.match(r"^  (-[^ ,]+(?:, -[^ ,]+)*)", line)
        if m:
            spellings = [s.strip() for s in m.group(1).split(",")]
            if not {"--help", "--version"} & set(spellings):
                options.append(spellings)
    return options


def man_text():
    return subprocess.run(["man", "-l", str(MAN)], capture_output=True, text=True,
                          env={"MANWIDTH": "250", "PATH": "/usr/bin:/bin"}).stdout


def man_section(text, name):
    """Section NAME of the rendered man page (headings are the unindented lines)."""
    parts = re.split(r"^([A-Z][A-Z ]*[A-Z])$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))[name]


def synopsis_lines(text, command):
    """The lines of `text` that start a `mossaicfs COMMAND` invocation."""
    return [line.strip() for line in text.splitlines() if re.match(rf"^\s*mossaicfs {re.escape(command)}(\s|$)", line)]


def test_help_reads_cleanly_at_80_columns():
    """ArgumentParser wraps help to the terminal; a text with its own line breaks inside a
    paragraph gets wrapped twice (a long line broken, then the next hard break: ragged). At 80
    columns: no line is longer, and no line ends where the next word would still have fitted
    on it (what a wrapper that ran once never does) — checked for prose (unindented lines),
    for the continuation lines of table entries (indented deeper than the entry), and for an
    unindented line directly under an indented one (a table row broken by the second wrap)."""
    for command in [[]] + [[c] for c in subcommands()]:
        text = help_text(*command)
        name = " ".join(["mossaicfs", *command])
        lines = text.splitlines()
        for line in lines:
            assert len(line) <= WIDTH, f"{name} --help: {len(line)} columns: {line!r}"
        for above, below in zip(lines, lines[1:]):
            if not above.strip() or not below.strip():
                continue
            indent_above = len(above) - len(above.lstrip())
            indent_below = len(below) - len(below.lstrip())
            if indent_above > 0 and indent_below == 0:
                raise AssertionError(f"{name} --help: an indented line continues unindented:\n{above}\n{below}")
            # Same-indent prose, or a continuation under an entry's description column.
            description = re.match(r"^( +\S.*?  +)\S", above)
            continues = (indent_above == indent_below == 0
                         or (indent_below > indent_above and description and len(description.group(1)) == indent_below)
                         or (indent_above == indent_below >= 8))
            if not continues or below.lstrip().startswith(("-", "[")):
                continue
            first_word = below.split()[0]
            assert len(above) + 1 + len(first_word) > WIDTH - 1, \
                f"{name} --help: ragged line break (\"{first_word}\" fits on the line above):\n{above}\n{below}"


def test_every_subcommand_and_its_options_are_in_the_man_page_and_readme():
    man = man_text()
    synopsis = man_section(man, "SYNOPSIS")
    commands = man_section(man, "COMMANDS")
    readme = (REPO / "README.md").read_text()
    usage = readme.split("## Usage", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    for command in subcommands():
        options = command_options(command)
        for where, text in [("man page SYNOPSIS", synopsis), ("README Usage", usage)]:
            lines = synopsis_lines(text, command)
            assert lines, f"`mossaicfs {command}` missing from the {where}"
            for spellings in options:
                assert any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", " ".join(lines)) for s in spellings), \
                    f"{'/'.join(spellings)} of `mossaicfs {command}` missing from the {where}"
        entry = re.search(rf"^       {re.escape(command)}\b.*?(?=^       [a-z]|\Z)", commands, re.M | re.S)
        assert entry, f"`{command}` has no entry under COMMANDS in the man page"
        for spellings in options:
            assert any(s in entry.group(0) for s in spellings), \
                f"{'/'.join(spellings)} of `mossaicfs {command}` not described under COMMANDS in the man page"


def test_every_mount_option_in_help_is_in_the_man_page_and_readme():
    """The -o options `mount --help` lists (its option table), each described in both."""
    helptext = help_text("mount")
    table = helptext.split("USAGE:", 1)[0]
    names = set()
    for m in re.finditer(r"^  ([a-z_]+)(?:=\S*)?(?:, ([a-z_]+)=\S*)?  ", table, re.M):
        names.update(n for n in m.groups() if n)
    assert {"cache_dir", "ro", "metrics", "endpoint"} <= names, names
    man = man_section(man_text(), "OPTIONS")
    readme = (REPO / "README.md").read_text()
    for name in sorted(names):
        assert re.search(rf"(?<![\w-]){name}\b", man), f"-o {name} (mount --help) missing from the man page's OPTIONS"
        assert f"`{name}" in readme, f"-o {name} (mount --help) missing from the README"

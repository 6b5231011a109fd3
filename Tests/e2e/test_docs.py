"""The documentation users read: the man page renders without warnings, and every option the
command line accepts is described in the man page, the README and --help."""
import re
import subprocess

from mossaic import REPO, run

MAN = REPO / "man" / "mossaicfs.8"


def accepted_options():
    """Every -o key MountOptions accepts, read from its source."""
    src = (REPO / "Sources" / "mossaicfs" / "MountOptions.swift").read_text()
    own = set(re.findall(r'case "([a-z_]+)"', src))
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

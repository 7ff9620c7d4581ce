"""The documentation stays navigable and complete: links resolve, every setting is documented.

Every relative link and image in README.md, docs/*.md, bench/README.md and tests/README.md must
name an existing file, and a `#anchor` an existing heading of its page (GitHub's slugs); the
README links every page under docs/. Every setting config.py reads, and every variable the
service reads straight from `os.environ`, must appear in docs/configuration.md; the variables
tests and benchmarks read, in tests/README.md."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

import config

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                ROOT / "bench" / "README.md", ROOT / "tests" / "README.md"])
CONFIGURATION = ROOT / "docs" / "configuration.md"
TESTS_README = ROOT / "tests" / "README.md"
# Where code other than the service reads the environment: its variables go in tests/README.md.
NOT_THE_SERVICE = {"tests", "bench", "testbed"}

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
ABSOLUTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)
# A read of os.environ (subscript, get, setdefault, pop) or os.getenv, by a literal name.
ENVIRON_READ = re.compile(r"""\bos\.(?:environ(?:\.(?:get|setdefault|pop)\s*\(|\s*\[)"""
                          r"""|getenv\s*\()\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")


def _prose(text: str) -> str:
    """The text a reader follows links in: fenced blocks and code spans taken out."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    """Every link target and image source of a page, in order."""
    prose = _prose(text)
    return [match.group(1) for pattern in (MARKDOWN_LINK, REFERENCE_LINK, HTML_LINK)
            for match in pattern.finditer(prose)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    # HTML tags are dropped, but inside a code span `<path>` is text.
    pieces = re.split(r"(`+.+?`+)", text)
    text = "".join(piece.strip("`") if piece.startswith("`") else re.sub(r"<[^>]+>", "", piece)
                   for piece in pieces)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings, repeated ones numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    result = set()
    for match in HEADING.finditer(FENCE.sub("", text)):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` that lead to no file, or to no heading of their page."""
    broken = []
    for target in links(page.read_text()):
        if ABSOLUTE.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not path.exists():
            broken.append(f"{target} (no file {path})")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
            broken.append(f"{target} (no heading #{anchor} in {path.name})")
    return broken


def settings_read_by_config() -> set[str]:
    """The names config.py reads, from its own tables through its public functions."""
    return set(config.load({})) | set(config.server_settings({}))


def _python_files(under_service: bool) -> Iterator[Path]:
    """The repository's Python files, of the service or of its tests and benchmarks."""
    for directory, subdirectories, files in os.walk(ROOT):
        # Virtualenvs, caches and git stay out (pruned, so they are never walked).
        subdirectories[:] = sorted(name for name in subdirectories
                                   if not name.startswith(".") and name != "node_modules")
        top = Path(directory).relative_to(ROOT).parts[:1]
        if (bool(top) and top[0] in NOT_THE_SERVICE) != under_service:
            yield from (Path(directory) / name for name in sorted(files) if name.endswith(".py"))


def environment_reads(files: Iterator[Path]) -> dict[str, str]:
    """Every variable the files read from `os.environ` or `os.getenv`, with a file reading it."""
    found: dict[str, str] = {}
    for path in files:
        for name in ENVIRON_READ.findall(path.read_text()):
            found.setdefault(name, path.name)
    return found


def undocumented(names: set[str] | dict[str, str], page: Path) -> list[str]:
    """The names `page` never spells as code (`NAME`), sorted."""
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", page.read_text()))
    return sorted(set(names) - documented)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page):
    assert page.is_file()
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_the_readme_links_every_page_under_docs():
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in links((ROOT / "README.md").read_text()) if not ABSOLUTE.match(target)}
    pages = set((ROOT / "docs").glob("*.md"))
    assert pages, "docs/ has no pages"
    assert not pages - linked, f"not linked from README.md: {sorted(pages - linked)}"


def test_every_setting_config_reads_is_in_the_configuration_page():
    settings = settings_read_by_config()
    assert {"HEARTBEAT_SECONDS", "PORT", "REDIS_URL"} <= settings  # the tables were found
    missing = undocumented(settings, CONFIGURATION)
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_every_variable_the_service_reads_from_the_environment_is_documented():
    reads = environment_reads(_python_files(under_service=True))
    assert "PROMETHEUS_MULTIPROC_DIR" in reads  # gunicorn.conf.py's read was found
    missing = undocumented(reads, CONFIGURATION)
    assert not missing, f"not in docs/configuration.md: {[(n, reads[n]) for n in missing]}"


def test_every_variable_tests_and_benchmarks_read_is_in_the_tests_readme():
    reads = environment_reads(_python_files(under_service=False))
    assert "TEST_REDIS_URL" in reads
    missing = undocumented(reads, TESTS_README)
    assert not missing, f"not in tests/README.md: {[(n, reads[n]) for n in missing]}"


# The checker itself, on pages made up for it.

def test_a_missing_file_an_unknown_anchor_and_an_html_image_are_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading: yes/no\n")
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](other.md#a-code-heading-yesno) [self](#title)\n"
                    "[gone](missing.md) [bad anchor](other.md#nowhere)\n"
                    '<img src="missing.png" alt="">\n'
                    "`[in code](ignored.md)`\n\n```\n[in a block](ignored.md)\n```\n"
                    "[web](https://example.com/x.md)\n")
    assert broken_links(page) == [
        f"missing.md (no file {tmp_path / 'missing.md'})",
        "other.md#nowhere (no heading #nowhere in other.md)",
        f"missing.png (no file {tmp_path / 'missing.png'})",
    ]


def test_repeated_headings_get_numbered_anchors():
    assert anchors("# Results\n## Results\n## Fan-out\n") == {"results", "results-1", "fan-out"}


def test_code_spans_in_headings_keep_their_text():
    assert slug("Proxy: `/v1/<path>`") == "proxy-v1path"
    assert slug("The <em>mock</em> upstream") == "the-mock-upstream"


def test_environment_reads_are_found_in_every_spelling(tmp_path):
    # Spelled through `module`, so this file's own text holds no read for the scan to find.
    module = "os"
    reads = [f"{module}.environ['A_B']", f'{module}.environ.get("C", "")', f"{module}.getenv('D')",
             f'{module}.environ.setdefault( "E", "1")', "environ.get('NOT_OS')"]
    source = tmp_path / "reads.py"
    source.write_text("import os\nenviron = {}\n" + "\n".join(reads) + "\n")
    assert set(environment_reads(iter([source]))) == {"A_B", "C", "D", "E"}

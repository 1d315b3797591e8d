"""docs/: the reference pages are generated from the code, the data and the templates, and the committed ones are
current."""

import re
from importlib.resources import files
from pathlib import Path

import pytest

from osteo_core.docgen import markdown, rules
from osteo_core.docgen.pages import PAGES
from schemas.gaps import GAP_NAMES

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = files("osteo_core.docgen") / "templates"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_committed_page_is_what_the_code_generates(page):
    committed = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert committed == PAGES[page](), f"docs/{page} is stale: run `make docs`"


def test_every_page_is_listed_in_the_docs_index():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"\]\(([a-z_]+\.md)\)", index)) == set(PAGES)


def test_each_page_names_the_module_that_writes_it():
    for name, page in PAGES.items():
        marker = PAGES[name]().splitlines()[2]
        assert marker == markdown.generated(page.__module__), name
        assert (ROOT / re.search(r"\((osteo_core/docgen/\w+\.py)\)", marker).group(1)).is_file(), name


def test_every_template_is_used_and_each_placeholder_filled(monkeypatch):
    """No template lies unread beside the code, and every ``${name}`` of one is what a page fills in."""
    read = set()
    real = markdown.template

    def recording(name):
        read.add(name)
        return real(name)

    monkeypatch.setattr(markdown, "template", recording)
    for page in PAGES.values():
        assert "${" not in page()
    assert read == {p.name.removesuffix(".md") for p in TEMPLATES.iterdir() if p.name.endswith(".md")}


def test_a_placeholder_without_its_value_or_a_value_without_its_placeholder_is_an_error():
    with pytest.raises(KeyError, match=r"without a value \['gaps_table'\]"):
        markdown.render("care_gaps", generated="x", closing_table="y")
    with pytest.raises(KeyError, match=r"values without a placeholder \['extra'\]"):
        markdown.render("care_gaps", generated="x", gaps_table="", closing_table="y", extra="z")


def test_no_template_spells_a_gap_name():
    """A gap's name comes from its declaration (``schemas.gaps``), as in the code (tests/test_registries.py);
    a placeholder may be called after one (``${screening_due}``)."""
    words = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, GAP_NAMES)) + r")(?![A-Za-z0-9_])")
    spelled = [
        f"{p.name}: {hit.group(1)}"
        for p in TEMPLATES.iterdir()
        for hit in words.finditer(re.sub(r"\$\{\w+\}", "", p.read_text(encoding="utf-8")))
    ]
    assert spelled == []


def test_rule_set_page_lists_a_reason_a_rule_set_drops():
    """A difference made in the data shows on the page, with no edit to the page code."""
    page = rules.rule_sets_page()
    bhof = page[page.index("## `bhof2022`") : page.index("## `standard`")]
    assert "no reason `osteopenia_with_smoking`" in bhof
    assert "`[sites] diagnostic`" in bhof
    assert "no reason `hip_or_vertebral_fracture`" not in page


def test_rules_page_takes_its_numbers_from_the_rule_file(monkeypatch):
    from osteo_core.decide import rules as rules_module

    real = rules_module.load_rules("standard")
    changed = dict(real.values, who_category={**real["who_category"], "osteoporosis_t_at_or_below": -2.7})
    monkeypatch.setattr(rules, "load_rules", lambda name: rules_module.RuleSet(real.source_path, changed))
    assert "≤ -2.7" in rules.rules_page() and "≤ -2.5" not in rules.rules_page()


def test_no_link_or_citation_leaves_the_repository():
    """The docs, README and every shipped data file cite only files a clone has."""
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "data").rglob("*.toml")]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for pattern in (r"\.\./shared", r"RULES\.md", r"CONTRACT\.md", r"clinical_evidence\.md"):
            assert not re.search(pattern, text), f"{path.relative_to(ROOT)} cites {pattern}"
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to missing {target}"

"""Tenant templating of `url` and header values: what renders, what is refused, and that refusals are loud."""

from __future__ import annotations

import pytest

from reconciler.engine import rendering
from reconciler.engine.inputs import Tenant
from reconciler.engine.rendering import MAX_RENDERED_LENGTH, TemplateError, render_template

ACME = Tenant(namespace="acme", slug="acme", vars={"org_id": "42", "workspace": "ws-1", "items": "i", "path": "p"})
BARE = Tenant(namespace="bare", slug="bare-co")


def test_public_api_is_pinned() -> None:
    assert rendering.__all__ == ["MAX_RENDERED_LENGTH", "TemplateError", "render_template"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("https://{{ tenant.slug }}.example.com/mcp", "https://acme.example.com/mcp"),
        ("https://x.example.com/orgs/{{ tenant.vars.org_id }}/mcp", "https://x.example.com/orgs/42/mcp"),
        ("{{ tenant.vars['workspace'] }}", "ws-1"),
        ("{{tenant.slug}}-{{tenant.vars.workspace}}", "acme-ws-1"),
        # variables named like dict methods or internals are still just variables
        ("{{ tenant.vars.items }}/{{ tenant.vars.path }}", "i/p"),
        ("{{ tenant.vars.region | default('eu') }}", "eu"),
        ("{{ tenant.slug | upper }}", "ACME"),
        ("{{ tenant.vars.workspace | replace('-', '_') }}", "ws_1"),
        ("{{ 'a b' | urlencode }}", "a%20b"),
        ("{% if tenant.vars.region is defined %}r{% else %}none{% endif %}", "none"),
        ("{{ tenant.slug ~ '-' ~ tenant.vars.org_id }}", "acme-42"),
        ("{# a comment #}plain", "plain"),
    ],
)
def test_slug_and_vars_render(template: str, expected: str) -> None:
    assert render_template(template, ACME) == expected


@pytest.mark.parametrize(
    ("template", "tenant", "message"),
    [
        (
            "{{ tenant.vars.region }}",
            ACME,
            "undefined template variable tenant.vars.region (tenant acme defines: items, org_id, path, workspace)",
        ),
        (
            "{{ tenant.vars.region }}",
            BARE,
            "undefined template variable tenant.vars.region (tenant bare-co defines no variables)",
        ),
        ("{{ region }}", ACME, "undefined template variable region (tenant acme defines:"),
        ("{{ tenant.name }}", ACME, "undefined template variable tenant.name"),
        ("x{{ tenant.vars.region.code }}y", ACME, "undefined template variable tenant.vars.region"),
        ("{{ tenant.vars.region ~ '' }}", ACME, "undefined template variable tenant.vars.region"),
        ("{{ tenant.vars }}", ACME, "tenant.vars is a group of values, not a value: use tenant.vars.NAME"),
    ],
)
def test_unknown_variables_raise_instead_of_rendering_empty(template: str, tenant: Tenant, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_template(template, tenant)

    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "template",
    [
        "{{ tenant.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ tenant.vars._values }}",
        "{{ tenant._path }}",
        "{{ tenant.slug.__len__ }}",
        "{{ tenant['__class__'] }}",
    ],
)
def test_sandbox_blocks_internal_attributes(template: str) -> None:
    with pytest.raises(TemplateError, match="template blocked by the sandbox: access to attribute"):
        render_template(template, ACME)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "template uses function and method calls"),
        ("{{ tenant.slug.upper() }}", "template uses function and method calls"),
        ("{{ cycler.__init__.__globals__.os }}", "template blocked by the sandbox"),
        ("{{ range(10) }}", "template uses function and method calls"),
        ("{% for c in tenant.slug %}{{ c }}{% endfor %}", "template uses loops"),
        ("{% set x = tenant.slug %}{{ x }}", "template uses assignments"),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "template uses macros"),
        ("{{ 'x' * 100000000 }}", "template uses arithmetic"),
        ("{{ 9 ** 9 ** 9 }}", "template uses arithmetic"),
        ("{% include 'other' %}", "template uses includes and imports"),
        ("{{ tenant.slug[::-1] }}", "template uses slices"),
        ("{{ tenant.slug | center(100000000) }}", "template filter 'center' is not available"),
        ("{{ tenant.slug | attr('__class__') }}", "template filter 'attr' is not available"),
    ],
)
def test_unsupported_constructs_are_refused_before_rendering(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_template(template, ACME)

    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    "template",
    ["{{ tenant.slug", "{% if %}", "{{ tenant.slug }}{% endif %}", "{{ tenant..slug }}"],
)
def test_syntax_errors_are_reported_as_such(template: str) -> None:
    with pytest.raises(TemplateError, match=r"^template syntax error: "):
        render_template(template, ACME)


def test_output_longer_than_the_limit_is_refused() -> None:
    tenant = Tenant(namespace="acme", slug="acme", vars={"blob": "x" * 5000})

    assert len(render_template("{{ tenant.vars.blob }}", tenant)) == 5000
    with pytest.raises(TemplateError, match=f"longer than {MAX_RENDERED_LENGTH} characters"):
        render_template("{{ tenant.vars.blob }}{{ tenant.vars.blob }}", tenant)
    with pytest.raises(TemplateError, match=f"longer than {MAX_RENDERED_LENGTH} characters"):
        render_template("{{ tenant.vars.blob | replace('x', 'yy') }}", tenant)


def test_texts_without_template_markers_skip_jinja() -> None:
    before = rendering._compile.cache_info()
    text = "https://{not-a-template}.example.com/{ tenant.slug }"

    assert render_template(text, ACME) is text
    assert rendering._compile.cache_info() == before


def test_compiled_templates_are_cached_by_source_text() -> None:
    template = "https://cache-check.example.com/{{ tenant.slug }}"
    render_template(template, ACME)
    before = rendering._compile.cache_info()

    assert render_template(template, BARE) == "https://cache-check.example.com/bare-co"
    after = rendering._compile.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_one_environment_without_globals_serves_every_render() -> None:
    assert rendering._ENVIRONMENT.globals == {}
    assert rendering._ENVIRONMENT.sandboxed
    assert rendering._ENVIRONMENT.autoescape is False

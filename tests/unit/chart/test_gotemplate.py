"""The `helm template` stand-in behaves like Helm where it matters for this chart.

Each case is Go text/template or Sprig behaviour that Helm users meet (and that a lenient renderer would get
wrong, hiding a chart bug): whitespace trimming, float64 values, nil map keys, strict comparisons, scoping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.chart.gotemplate import Chart, RenderError, merge_values


def render_one(tmp_path: Path, template: str, values: dict[str, Any] | None = None, helpers: str = "") -> str:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "Chart.yaml").write_text("name: demo\nversion: 1.2.3\nappVersion: '4.5'\n")
    (tmp_path / "values.yaml").write_text("{}\n")
    (tmp_path / "templates" / "_helpers.tpl").write_text(helpers)
    (tmp_path / "templates" / "t.yaml").write_text(template)
    chart = Chart.load(tmp_path)
    return chart.render(values or {})["templates/t.yaml"]


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("a:\n  {{- if true }}\n  b: 1\n  {{- end }}\nc: 2", {}, "a:\n  b: 1\nc: 2"),
        ("x {{- 3 -}} y", {}, "x3y"),
        ("{{ .Values.port }}", {"port": 8080}, "8080"),
        ("{{ .Values.big }}", {"big": 1000000}, "1e+06"),  # Helm's float64 values
        ("{{ .Values.big | int }}", {"big": 1000000}, "1000000"),
        ("{{ .Values.missing }}", {}, ""),
        ("{{ .Values.flag }}", {"flag": False}, "false"),
        ('{{ default "d" .Values.empty }}', {"empty": ""}, "d"),
        ("{{ .Values.m | toYaml }}", {"m": {"b": 1, "a": [1, "x"]}}, "a:\n- 1\n- x\nb: 1"),
        ("{{ toYaml .Values.m | nindent 2 }}", {"m": {"k": "v"}}, "\n  k: v"),
        ("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}", {"m": {"b": 2, "a": 1}}, "a=1;b=2;"),
        ("{{ range .Values.l }}[{{ . }}]{{ else }}none{{ end }}", {"l": []}, "none"),
        ("{{ with .Values.m }}{{ .k }}{{ end }}", {"m": {"k": "v"}}, "v"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", {}, "2"),
        ('{{ and 1 0 }} {{ or 0 "" "z" }}', {}, "0 z"),
        ('{{ printf "%s-%s" .Chart.Name .Chart.Version }}', {}, "demo-1.2.3"),
        ('{{ "abcdefgh-" | trunc 8 | trimSuffix "-" }}', {}, "abcdefgh"),
        ("{{ quote .Values.port }}", {"port": 8080}, '"8080"'),
        ('{{ include "x" . }}', {}, "from helper 4.5"),
    ],
)
def test_renders_like_helm(tmp_path: Path, template: str, values: dict[str, Any], expected: str) -> None:
    helpers = '{{- define "x" -}}from helper {{ .Chart.AppVersion }}{{- end }}'
    assert render_one(tmp_path, template, values, helpers) == expected


@pytest.mark.parametrize(
    ("template", "values", "error"),
    [
        ("{{ .Values.a.b }}", {}, "nil pointer evaluating interface {}.b"),
        ("{{ eq .Values.port 8080 }}", {"port": 8080}, "incompatible types for comparison"),
        ("{{ .Release.Namspace }}", {}, "can't evaluate field Namspace"),
        ('{{ required "registry secret" .Values.secret }}', {}, "registry secret"),
        ('{{ fail "nope" }}', {}, "nope"),
        ('{{ include "undefined" . }}', {}, 'no template "undefined"'),
    ],
)
def test_fails_where_helm_fails(tmp_path: Path, template: str, values: dict[str, Any], error: str) -> None:
    with pytest.raises(RenderError, match=error.replace("{", r"\{").replace("}", r"\}")):
        render_one(tmp_path, template, values)


def test_values_merge_like_helm() -> None:
    defaults = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "x"}
    merged = merge_values(defaults, {"a": {"b": 10}, "d": [3], "e": None})
    assert merged == {"a": {"b": 10, "c": 2}, "d": [3]}
    assert defaults == {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "x"}

"""Malformed inputs, fed to every registered tool through the CLI: exit 2, one line naming the parameter,
nothing run and nothing written. Plus regressions for strict-JSON provenance and markup-free printing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from physagent.app.cli import app
from physagent.tools import ToolInputError, ToolResult, ToolRuntimeError, Workspace, _runner, call_tool, registry, tool
from physagent.tools._registry import MAX_ITEMS, SEED_RANGE
from physagent.tools._workspace import strict_json

runner = CliRunner()
ARTIFACT_ID = "ab-0123456789"  # matches every artifact-id pattern; no such artifact exists
NON_FINITE = (math.nan, math.inf, -math.inf)


def _branches(prop: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a property schema (``anyOf`` members, ``$ref`` resolved), ``null`` left out."""
    found = []
    for member in prop.get("anyOf", [prop]):
        ref = member.get("$ref")
        branch = schema["$defs"][ref.split("/")[-1]] if ref else member
        if branch.get("type") != "null":
            found.append(branch)
    return found


def _valid(prop: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A value the schema accepts (the default, else one built from the type and its limits)."""
    if "default" in prop and prop["default"] is not None:
        return prop["default"]
    branch = _branches(prop, schema)[0]
    kind = branch.get("type", "object")
    if "enum" in branch:
        return branch["enum"][0]
    if kind == "string":
        return ARTIFACT_ID if "pattern" in branch else "x" * max(2, branch.get("minLength", 1))
    if kind in ("integer", "number"):
        return branch.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return [_valid(branch["items"], schema)] * max(1, branch.get("minItems", 1))
    return {}


def _baseline(spec: Any) -> dict[str, Any]:
    """Valid values for the required parameters: any error then comes from the one value a case changes."""
    schema = spec.parameters_schema()
    return {name: _valid(schema["properties"][name], schema) for name in schema.get("required", [])}


def _too_long(prop: dict[str, Any], schema: dict[str, Any]) -> list[Any]:
    """A list of valid items, one more than the schema's maximum."""
    branch = next(b for b in _branches(prop, schema) if b.get("type") == "array")
    return [_valid(branch["items"], schema)] * (branch["maxItems"] + 1)


def _opts_into_non_finite(spec: Any, name: str) -> bool:
    """Whether a parameter says (``Field(allow_inf_nan=True)``) that NaN or ±inf mean something to it."""
    field = spec.input_model.model_fields[name]
    return any(getattr(item, "allow_inf_nan", False) for item in field.metadata)


def _cases(spec: Any) -> list[tuple[str, Any]]:
    """(parameter, bad value) pairs for one tool: non-finite floats, huge ints, over-long lists, wrong types,
    and an unknown key."""
    schema = spec.parameters_schema()
    cases: list[tuple[str, Any]] = []
    for name, prop in schema["properties"].items():
        kinds = {branch.get("type", "object") for branch in _branches(prop, schema)}
        if "number" in kinds and not _opts_into_non_finite(spec, name):
            cases += [(name, value) for value in NON_FINITE]
        if "integer" in kinds:
            cases += [(name, 2**70), (name, -(2**70))]
        if "array" in kinds:
            cases.append((name, _too_long(prop, schema)))
        cases.append((name, [[["wrong"]]] if "object" in kinds else {"wrong": "type"}))
    return [*cases, ("no_such_parameter", 1)]


def _call(name: str, arguments: dict[str, Any]) -> Any:
    return runner.invoke(app, ["tools", "call", name, "--input", json.dumps(arguments)])


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any tool that starts running fails the test: validation alone must refuse these inputs."""

    def refuse(spec: Any, kwargs: dict[str, Any]) -> None:
        pytest.fail(f"{spec.name} ran with {kwargs}: validation should have refused the input")

    monkeypatch.setattr(_runner, "_invoke", refuse)


@pytest.mark.parametrize("name", registry.names())
def test_the_baseline_arguments_are_valid(name: str) -> None:
    """The baseline each malformed case starts from passes validation, so every refusal is the case's own."""
    spec = registry.get(name)
    spec.validate(_baseline(spec))


@pytest.mark.parametrize("name", registry.names())
def test_every_malformed_input_exits_2_naming_the_parameter_and_writes_nothing(
    name: str, no_workspace_writes: Workspace, nothing_runs: None
) -> None:
    """NaN, ±inf, 2**70, an over-long list, a wrong type and an unknown key: exit 2, one line, nothing saved."""
    spec = registry.get(name)
    for param, value in _cases(spec):
        result = _call(name, _baseline(spec) | {param: value})
        where = f"{name}.{param}={str(value)[:60]}"
        assert result.exit_code == 2, f"{where}: exit {result.exit_code}\n{result.output}"
        message = result.stderr.strip()
        assert "\n" not in message and len(message) < 2000, f"{where}: not one line: {message[:300]}"
        assert message.startswith(f"error: {name}:") and param in message, f"{where}: {message}"
        assert not result.stdout, f"{where}: printed {result.stdout[:200]}"


def test_every_list_parameter_has_a_maximum_length() -> None:
    """The registry bounds every list parameter: 10,000 items unless the tool declares fewer."""
    for spec in registry:
        schema = spec.parameters_schema()
        for name, prop in schema["properties"].items():
            for branch in _branches(prop, schema):
                if branch.get("type") == "array":
                    assert branch.get("maxItems", MAX_ITEMS + 1) <= MAX_ITEMS, f"{spec.name}.{name} is unbounded"


def test_every_seed_is_bounded_to_what_numpy_accepts() -> None:
    """Each ``seed`` parameter lies in 0 … 2**32 - 1 in its schema."""
    seeds = [(spec.name, spec.parameters_schema()["properties"]["seed"]) for spec in registry
             if "seed" in spec.input_model.model_fields]
    assert seeds
    for name, prop in seeds:
        assert (prop["minimum"], prop["maximum"]) == SEED_RANGE, name


def test_a_seed_of_two_to_the_32_is_refused_with_exit_2(no_workspace_writes: Workspace, nothing_runs: None) -> None:
    """seed=2**32 used to pass validation and fail inside scikit-learn with exit 1."""
    result = runner.invoke(app, ["tools", "call", "make_jet_dataset", "--arg", f"seed={2**32}"])
    assert result.exit_code == 2
    assert "make_jet_dataset: seed=4294967296 must be less than or equal to 4294967295" in result.stderr


def test_a_bracketed_value_prints_as_text(no_workspace_writes: Workspace) -> None:
    """A value holding rich markup (``[/x]``) is echoed literally with exit 2, not a MarkupError traceback;
    the artifact-id pattern prints with its brackets."""
    result = runner.invoke(app, ["tools", "call", "histogram", "--arg", "source=[/x]", "--arg", "field=pt"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: histogram: source='[/x]' must match pattern '^[a-z]{2,5}-[0-9a-f]{10}$' — Id of an events, "
        "jets or table artifact."
    )


def test_non_finite_numbers_are_refused_in_every_spelling(no_workspace_writes: Workspace) -> None:
    """NaN and ±inf as JSON tokens, as bare words and as strings are all refused, naming the parameter."""
    for raw in ("NaN", "nan", "Infinity", "-inf", '"inf"'):
        result = runner.invoke(app, ["tools", "call", "generate_events", "--arg", "process=wprime_to_xy",
                                     "--arg", f"m_wprime_gev={raw}"])
        assert result.exit_code == 2, raw
        assert "generate_events: m_wprime_gev=" in result.stderr and "must be a finite number" in result.stderr


def test_history_json_stays_valid_json_after_a_refused_nan(workspace: Workspace, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN histogram range is refused; history --json and the exported script stay strict JSON/Python."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "values.csv").write_text("x\n0.1\n0.4\n0.7\n")
    table = json.loads(runner.invoke(app, ["tools", "call", "read_table", "--arg", "path=values.csv",
                                           "--json"]).stdout)["artifacts"][0]["id"]
    refused = runner.invoke(app, ["tools", "call", "histogram", "--arg", f"source={table}", "--arg", "field=x",
                                  "--arg", "range_min=0", "--arg", "range_max=NaN"])
    assert refused.exit_code == 2 and "range_max=nan must be a finite number" in refused.stderr
    history = runner.invoke(app, ["history", "--json"])

    def no_constants(token: str) -> None:
        raise AssertionError(f"history --json holds {token}")

    calls = json.loads(history.stdout, parse_constant=no_constants)
    assert [c["tool"] for c in calls] == ["read_table"]
    script = tmp_path / "reproduce.py"
    assert runner.invoke(app, ["export", "--script", str(script)]).exit_code == 0
    compile(script.read_text(), str(script), "exec")
    assert "nan" not in script.read_text().lower().replace("nanoaod", "")


class _NanResult(ToolResult):
    value: float = Field(description="A number that is not one.")


def test_a_tool_returning_nan_fails_cleanly_and_records_nothing(no_workspace_writes: Workspace) -> None:
    """Provenance is strict JSON: a non-finite result is a one-line runtime error and nothing is recorded."""

    @tool(category="demo")
    def nan_maker(x: Annotated[float, Field(description="Any finite number.")] = 1.0) -> _NanResult:
        """Return NaN, as a buggy tool would."""
        return _NanResult(value=x * math.nan)

    try:
        with pytest.raises(ToolRuntimeError, match=r"nan_maker: result\.value is not a finite number"):
            call_tool("nan_maker", {}, workspace=no_workspace_writes)
    finally:
        registry.remove("nan_maker")
    with pytest.raises(ValueError, match="not JSON compliant"):
        strict_json({"x": math.inf})


class Window(BaseModel):
    low: float = 0.0


class Strict(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)
    low: float = 0.0


def test_the_registry_refuses_a_nested_model_that_accepts_nan() -> None:
    """A pydantic model used inside a parameter must refuse NaN and ±inf too (checked at import time)."""
    with pytest.raises(TypeError, match="allow_inf_nan=False"):
        @tool(category="demo")
        def windowed(window: Annotated[Window, Field(description="A window.")]) -> _NanResult:
            """Use a window."""
            return _NanResult(value=window.low)

    @tool(category="demo")
    def strict_windowed(window: Annotated[Strict, Field(description="A window.")]) -> _NanResult:
        """Use a window."""
        return _NanResult(value=window.low)

    try:
        with pytest.raises(ToolInputError, match=r"window\.low=nan must be a finite number"):
            registry.get("strict_windowed").validate({"window": {"low": math.nan}})
    finally:
        registry.remove("strict_windowed")


def test_a_tool_may_declare_its_own_shorter_list_limit_and_int_range() -> None:
    """Declared limits stay; the registry only adds where none is declared, and never loosens a limit."""

    @tool(category="demo")
    def limited(
        items: Annotated[list[int], Field(max_length=3, description="At most three.")] = [],  # noqa: B006
        count: Annotated[int, Field(ge=0, le=5, description="Zero to five.")] = 0,
        seed: Annotated[int, Field(ge=0, le=10**12, description="A seed with a loose limit.")] = 0,
    ) -> _NanResult:
        """Do nothing."""
        return _NanResult(value=0.0)

    try:
        props = registry.get("limited").parameters_schema()["properties"]
        assert props["items"]["maxItems"] == 3 and props["count"]["maximum"] == 5
        assert props["seed"]["maximum"] == SEED_RANGE[1]
    finally:
        registry.remove("limited")


def test_unreadable_files_are_explained_on_one_line(no_workspace_writes: Workspace, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """uproot's and pandas' multi-line complaints become one line naming the file and what was wrong."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.root").write_text("hello\nworld\n")
    (tmp_path / "bad.csv").write_text('a,b\n1,2,3,4\n"x\n')
    root = runner.invoke(app, ["tools", "call", "read_root", "--arg", "path=bad.root"])
    assert root.exit_code == 2 and root.stderr.strip().count("\n") == 0
    assert "path='bad.root' is not a readable ROOT file (it does not start with the ROOT signature" in root.stderr
    csv = runner.invoke(app, ["tools", "call", "read_table", "--arg", "path=bad.csv"])
    assert csv.exit_code == 2 and csv.stderr.strip().count("\n") == 0
    assert "path='bad.csv' is not a readable CSV file (ParserError:" in csv.stderr


def test_pythia_rejections_name_the_parameter(no_workspace_writes: Workspace,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting generated from a parameter and rejected by Pythia is reported by that parameter's name;
    cuts and masses beyond √s are refused before Pythia starts."""
    from physagent.tools.simulate import _pythia

    monkeypatch.setattr(_pythia, "invalid_settings",
                        lambda lines: [(line, "out of range") for line in lines if line.startswith("34:m0")])
    with pytest.raises(ToolInputError, match=r"generate_events: m_wprime_gev=3000\.0 is not accepted by Pythia "
                                        r"\(it becomes '34:m0 = 3000': out of range\)"):
        call_tool("generate_events", {"process": "wprime_to_xy", "m_wprime_gev": 3000.0},
                  workspace=no_workspace_writes)
    for arguments, expected in [
        ({"process": "qcd_dijet", "pt_hat_min_gev": 1e6}, "pt_hat_min_gev=1000000.0 must be below √s/2 = 6800 GeV"),
        ({"process": "wprime_to_xy", "m_wprime_gev": 1e12}, "m_wprime_gev=1000000000000.0 must be below 17000 GeV"),
        ({"process": "ttbar", "sqrt_s_tev": 0.2}, "sqrt_s_tev=0.2 is below what process 'ttbar' needs"),
    ]:
        result = runner.invoke(app, ["tools", "call", "generate_events", "--input", json.dumps(arguments)])
        assert result.exit_code == 2 and expected in result.stderr, result.stderr


def test_the_embedded_grammar_does_not_unroll_ten_thousand_list_items() -> None:
    """llguidance unrolls maxItems into rules: the reply grammar caps the registry's 10,000 at a short length."""
    from physagent.agent.backends.embedded import compact_grammar, reply_schema

    grammar = compact_grammar(reply_schema([spec.json_schema() for spec in registry]))
    assert f'"maxItems":{MAX_ITEMS}' not in grammar and '"maxItems":64' in grammar


def test_an_agent_session_holding_nan_is_saved_as_strict_json(workspace: Workspace) -> None:
    """A model may ask for NaN (refused, but recorded): the session record keeps it as the text 'nan'."""
    workspace.save_session("s-0123456789", "scripted", {"arguments": {"m_wprime_gev": math.nan, "x": [-math.inf]}})
    record = workspace.sessions()[0]["record"]
    assert record == {"arguments": {"m_wprime_gev": "nan", "x": ["-inf"]}}

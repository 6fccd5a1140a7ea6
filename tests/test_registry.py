"""The tool contract: schemas, validation and error messages derived from one typed definition."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from physagent.tools import ToolInputError, ToolResult, registry, tool


class Out(ToolResult):
    value: int = Field(description="A number.")


def _wrong_value(prop: dict) -> object:
    """A value of the wrong JSON type for a parameter schema."""
    types = {p.get("type") for p in prop.get("anyOf", [prop])}
    return {"not": "valid"} if "object" not in types else "not-an-object"


def test_registry_holds_the_foundation_tools() -> None:
    """Importing tools registers the simulation tools."""
    assert {"generate_events", "cluster_jets"} <= set(registry.names())


@pytest.mark.parametrize("name", registry.names())
def test_every_tool_has_a_complete_schema(name: str) -> None:
    """Every tool has a one-line summary and every parameter a type and a description."""
    spec = registry.get(name)
    schema = spec.json_schema()
    assert schema["name"] == name and spec.summary.endswith(".")
    for pname, prop in schema["parameters"]["properties"].items():
        assert prop.get("description"), f"{name}.{pname} has no description"
        assert "type" in prop or "anyOf" in prop or "enum" in prop or "$ref" in prop, f"{name}.{pname} untyped"


@pytest.mark.parametrize("name", registry.names())
def test_every_tool_rejects_a_wrong_type_naming_the_parameter(name: str) -> None:
    """A wrongly typed argument gives a ToolInputError that names the tool and parameter."""
    spec = registry.get(name)
    pname, prop = next(iter(spec.parameters_schema()["properties"].items()))
    with pytest.raises(ToolInputError) as info:
        spec.validate({pname: _wrong_value(prop)})
    assert str(info.value).startswith(f"{name}: {pname}=")


def test_unknown_parameter_lists_the_allowed_ones() -> None:
    """A misspelt parameter is refused with the list of valid names."""
    with pytest.raises(ToolInputError, match=r"unknown parameter 'n_event'.*n_events"):
        registry.get("generate_events").validate({"process": "ttbar", "n_event": 5})


def test_missing_required_parameter_is_named() -> None:
    """Leaving out a required parameter says which one and what it is."""
    with pytest.raises(ToolInputError, match="parameter 'process' is required"):
        registry.get("generate_events").validate({})


def test_limits_are_explained_with_the_offending_value() -> None:
    """A value outside its limits is quoted with the rule it breaks."""
    with pytest.raises(ToolInputError) as info:
        registry.get("generate_events").validate({"process": "ttbar", "n_events": -5})
    assert "generate_events: n_events=-5 must be greater than or equal to 1" in str(info.value)


def test_registry_refuses_an_undocumented_parameter() -> None:
    """A tool whose parameter lacks a description is refused when it is defined."""
    with pytest.raises(TypeError, match="needs Annotated"):

        @tool(category="test")
        def undocumented(x: int) -> Out:
            """Do nothing."""
            return Out(value=x)


def test_registry_refuses_a_result_that_is_not_a_tool_result() -> None:
    """Results must be typed ToolResult models, never bare dicts."""
    with pytest.raises(TypeError, match="ToolResult"):

        @tool(category="test")
        def untyped_result(x: Annotated[int, Field(description="x")]) -> dict:
            """Do nothing."""
            return {"x": x}


def test_artifact_parameters_are_detected_from_the_annotation() -> None:
    """cluster_jets declares that its 'events' parameter takes an events artifact."""
    assert registry.get("cluster_jets").artifact_params == {"events": ("events",)}
    assert registry.get("cluster_jets").parameters_schema()["properties"]["events"]["pattern"]

r"""Mending artifact arguments a small model made up, where the plan itself says what was meant.

A small model often writes an id that looks right but exists nowhere (``"shw-12345"``, the example id of
a parameter description, or the *name* of the tool that makes the input: ``"generate_events"``). When
exactly one thing fits — the latest earlier step whose output has a kind the parameter accepts (narrowed
by the made-up id's prefix: ``shw`` → showers), or else the session's only artifact of such a kind — the
argument becomes that reference, and the plan's notes say so. Anything ambiguous is left for
:func:`~physagent.agent.plan.check_plan` to refuse with its usual message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from physagent.agent.agent_tools import is_known, spec
from physagent.agent.plan import Plan, Step, artifact_fields, step_reference
from physagent.tools import ARTIFACT_ID_PATTERN, KIND_PREFIXES

__all__ = ["ASKED_TO_REPEAT", "drop_artifact_reads", "drop_repeated_steps", "drop_unasked_exports",
           "mend_invented_ids", "mend_misread_sources", "use_named_artifacts"]

_LOOKS_LIKE_ID = re.compile(r"^([a-z]{2,5})-[0-9a-z]{1,16}$")
_ID = re.compile(ARTIFACT_ID_PATTERN)
_ID_IN_TEXT = re.compile(ARTIFACT_ID_PATTERN.strip("^$"))
_PREFIX_KINDS = {prefix: kind for kind, prefix in KIND_PREFIXES.items()}
# result fields whose name is not their artifact kind
_FIELD_KINDS = {"data": ("table", "events", "jets"), "samples": ("table", "jets", "showers"),
                "scores": ("table",), "roc_plot": ("plot",), "outputs": ()}


def mend_invented_ids(plan: Plan, artifacts: Mapping[str, str]) -> Plan:
    """The plan with each made-up artifact argument replaced by the one output or artifact it can mean."""
    steps: list[Step] = []
    notes: list[str] = []
    for step in plan.steps:
        arguments = dict(step.arguments)
        if is_known(step.tool):
            for name, kinds in spec(step.tool).artifact_params.items():
                if name in arguments:
                    arguments[name] = _mended(arguments[name], kinds, steps, artifacts, notes, step.number)
        steps.append(Step(step.number, step.tool, arguments))
    return plan if not notes else Plan(steps, plan.answer, [*plan.notes, *notes])


def _mended(value: Any, kinds: tuple[str, ...], earlier: list[Step], artifacts: Mapping[str, str],
            notes: list[str], number: int) -> Any:
    if isinstance(value, list):
        return [_mended(item, kinds, earlier, artifacts, notes, number) for item in value]
    if not isinstance(value, str) or not _invented(value, artifacts):
        return value
    wanted = _narrowed(value, kinds)
    found = _latest_output(earlier, wanted, value) or _only_artifact(artifacts, wanted)
    if found is not None:
        notes.append(f"step {number}: {value!r} is no artifact; took {found} instead")
        return found
    return value


def _invented(value: str, artifacts: Mapping[str, str]) -> bool:
    if step_reference(value) is not None or value in artifacts:
        return False
    return bool(_LOOKS_LIKE_ID.match(value) or _ID.match(value)) or is_known(value.split("(", maxsplit=1)[0].strip())


def _narrowed(value: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The accepted kinds, narrowed to the one the made-up id's prefix names (if it names an accepted one)."""
    match = _LOOKS_LIKE_ID.match(value)
    kind = _PREFIX_KINDS.get(match.group(1)) if match else None
    return (kind,) if kind in kinds else kinds


def _latest_output(earlier: list[Step], kinds: tuple[str, ...], value: str) -> str | None:
    """A reference to the latest earlier step with an output of one of ``kinds`` (the named tool's, if named)."""
    named = value.split("(", maxsplit=1)[0].strip()
    for step in reversed(earlier):
        if not is_known(step.tool) or (is_known(named) and step.tool != named):
            continue
        for field_name in artifact_fields(spec(step.tool)):
            if set(_FIELD_KINDS.get(field_name, (field_name,))) & set(kinds):
                return f"${step.number}.{field_name}"
    return None


def _only_artifact(artifacts: Mapping[str, str], kinds: tuple[str, ...]) -> str | None:
    fitting = [artifact_id for artifact_id, kind in artifacts.items() if kind in kinds]
    return fitting[0] if len(fitting) == 1 else None


def mend_misread_sources(plan: Plan) -> Plan:
    """The plan with each reference to a field its step does not make (``"$1.jets"`` of generate_events) pointed
    at the one earlier step that makes it, and each jets field read from events (``histogram(source="$1",
    field="jets.pt")``) read from the one step that clustered those events: a small model names the step that
    started the chain."""
    steps: list[Step] = []
    notes: list[str] = []
    for step in plan.steps:
        arguments = {name: _made_by(value, steps, notes, step.number) for name, value in step.arguments.items()}
        source = step_reference(arguments.get("source"))
        field = arguments.get("field")
        if source and isinstance(field, str) and field.startswith("jets.") and _tool_of(steps, source[0]) in _EVENTS:
            clustered = [s for s in steps if s.tool == "cluster_jets" and _reads(s, "events", source[0])]
            if len(clustered) == 1:
                arguments["source"] = f"${clustered[0].number}"
                notes.append(f"step {step.number}: {field} is read from the jets of step {clustered[0].number}")
        steps.append(Step(step.number, step.tool, arguments))
    steps = _read_through_detector(_code_reads_data(steps, notes), notes)
    return plan if not notes else Plan(steps, plan.answer, [*plan.notes, *notes])


def _code_reads_data(steps: list[Step], notes: list[str]) -> list[Step]:
    """``steps`` with each ``write_code`` input that is a histogram the plan fills replaced by the data it is filled
    from: code asked for per-event quantities ("the pT of the muon pair") cannot get them from a histogram."""
    filled_from = {s.number: s.arguments["source"] for s in steps if s.tool == "histogram" and "source" in s.arguments}

    def data_of(item: Any) -> Any:
        reference = step_reference(item)
        return filled_from.get(reference[0], item) if reference else item

    mended = []
    for step in steps:
        inputs = step.arguments.get("inputs")
        read = list(dict.fromkeys(map(data_of, inputs))) if isinstance(inputs, list) else inputs
        if step.tool != "write_code" or read == inputs:
            mended.append(step)
            continue
        notes.append(f"step {step.number}: the code reads the data the histograms are filled from")
        mended.append(Step(step.number, step.tool, {**step.arguments, "inputs": read}))
    return mended


def _read_through_detector(steps: list[Step], notes: list[str]) -> list[Step]:
    """``steps`` with the later readers of a detector step's truth input reading its output instead, when no step
    reads that output: "pass them through the detector, then cluster jets" clusters the detector-level events (a
    small model wires every step to step 1). A plan that also reads the output (truth vs reco) is left alone."""
    for detector in [s for s in steps if s.tool == "detector_response"]:
        truth = step_reference(detector.arguments.get("events"))
        later = [s for s in steps if s.number > detector.number]
        if truth is None or any(_reads_any(s, detector.number) for s in later):
            continue
        for i, step in enumerate(steps):
            if step in later and (moved := _moved_to(step, truth[0], detector.number)) is not step:
                steps[i] = moved
                notes.append(f"step {step.number} reads the detector-level events of step {detector.number}")
    return steps


def _reads_any(step: Step, number: int) -> bool:
    return any(ref[0] == number for value in step.arguments.values() for ref in _references(value))


def _moved_to(step: Step, source: int, target: int) -> Step:
    """``step`` with its ``events``/``source`` reference to step ``source`` pointed at step ``target``."""
    arguments = dict(step.arguments)
    for name in ("events", "source"):
        reference = step_reference(arguments.get(name))
        if reference is not None and reference[0] == source:
            arguments[name] = f"${target}" + (f".{reference[1]}" if reference[1] else "")
    return step if arguments == step.arguments else Step(step.number, step.tool, arguments)


_EVENTS = ("generate_events", "detector_response", "merge_samples", "read_root")


def _reads(step: Step, parameter: str, number: int) -> bool:
    reference = step_reference(step.arguments.get(parameter))
    return reference is not None and reference[0] == number


def _tool_of(steps: list[Step], number: int) -> str | None:
    return next((s.tool for s in steps if s.number == number), None)


def _made_by(value: Any, earlier: list[Step], notes: list[str], number: int) -> Any:
    """``value``, or a reference to a field its step does not make moved to the one earlier step that makes it."""
    reference = step_reference(value)
    tool = _tool_of(earlier, reference[0]) if reference and reference[1] else None
    if reference is None or tool is None or not is_known(tool) or reference[1] in artifact_fields(spec(tool)):
        return value
    makers = [s for s in earlier if is_known(s.tool) and reference[1] in artifact_fields(spec(s.tool))]
    if len(makers) != 1:
        return value
    notes.append(f"step {number}: {value} is made by step {makers[0].number}, not step {reference[0]}")
    return f"${makers[0].number}.{reference[1]}"


_READERS = ("read_root", "read_table")


def drop_artifact_reads(plan: Plan, artifacts: Mapping[str, str]) -> Plan:
    """The plan without the steps that read a session artifact as a file (``read_root(path="hist-….root")``): the
    artifact is there already, so a later step's reference to such a step becomes the artifact's id."""
    named = {s.number: _artifact_named(s, artifacts) for s in plan.steps if s.tool in _READERS}
    read = {number: artifact for number, artifact in named.items() if artifact is not None}
    if not read:
        return plan
    steps = [Step(s.number, s.tool, {name: _instead(value, read) for name, value in s.arguments.items()})
             for s in plan.steps if s.number not in read]
    notes = [f"step {number} read the session's artifact {artifact} as a file; dropped, {artifact} is used as it is"
             for number, artifact in read.items()]
    answer = _answer_without(plan.answer, read.keys())
    return Plan(steps, answer, [*plan.notes, *notes])


def _answer_without(answer: str, dropped: Iterable[int]) -> str:
    """The plan's answer, or '' when it quotes a dropped step: it is then written again once the results are in."""
    return "" if {int(n) for n in re.findall(r"\{\$(\d+)", answer)} & set(dropped) else answer


def _artifact_named(step: Step, artifacts: Mapping[str, str]) -> str | None:
    path = step.arguments.get("path")
    stem = path.rsplit("/", 1)[-1].split(".", 1)[0] if isinstance(path, str) else None
    return stem if stem in artifacts else None


def _instead(value: Any, read: Mapping[int, str]) -> Any:
    if isinstance(value, list):
        return [_instead(item, read) for item in value]
    reference = step_reference(value)
    return read[reference[0]] if reference is not None and reference[0] in read else value


# what a step makes, for a plan that makes again what the request hands over by id
_MAKES_KIND = {"make_jet_dataset": "dataset", "generate_events": "events", "cluster_jets": "jets",
               "simulate_showers": "showers", "train_tagger": "model"}
_ANEW = re.compile(r"\b(?:new|another|fresh|second|more)\b", re.IGNORECASE)
# a request that orders one made as well ("generate 200 events and compare them with ev-…") keeps the step
_MAKING = {"dataset": r"\b(?:make|build|create|generate)\w*\b[^.]*\bdatasets?\b",
           "events": r"\b(?:generat|simulat|produc|make)\w*\b[^.]*\bevents?\b", "jets": r"\bcluster",
           "showers": r"\bsimulat", "model": r"\btrain"}


def use_named_artifacts(plan: Plan, request: str, artifacts: Mapping[str, str]) -> Plan:
    """The plan without the steps that make again an artifact the request hands over by id ("on the W-vs-QCD dataset
    datas-…": a small model planned a new make_jet_dataset), later references to such a step reading that id; a
    request for a new one ("a fresh dataset") is left as written."""
    named: dict[str, list[str]] = {}
    for artifact_id in dict.fromkeys(_ID_IN_TEXT.findall(request)):
        if artifact_id in artifacts:
            named.setdefault(artifacts[artifact_id], []).append(artifact_id)
    if not named or _ANEW.search(request):
        return plan
    remade = {s.number: named[kind][0] for s in plan.steps
              if (kind := _MAKES_KIND.get(s.tool)) and len(named.get(kind, [])) == 1
              and not re.search(_MAKING[kind], request, re.IGNORECASE)}
    if not remade:
        return plan
    steps = [Step(s.number, s.tool, {name: _instead(value, remade) for name, value in s.arguments.items()})
             for s in plan.steps if s.number not in remade]
    notes = [f"step {number} made a new {artifacts[artifact]} although the request names {artifact}; dropped, "
             f"{artifact} is used" for number, artifact in remade.items()]
    answer = _answer_without(plan.answer, remade.keys())
    return Plan(steps, answer, [*plan.notes, *notes])


# outputs a small model adds from a worked example: written only when the request asks for them
_EXPORTS = ("export_fpga", "synthesize_fpga", "write_root", "write_hepmc", "export_histograms", "export_session")


def drop_unasked_exports(plan: Plan, asked: list[str], request: str) -> Plan:
    """The plan without export steps the request does not ask for (``asked``: the tools its verbs order) and no
    later step reads ("train a PFN, evaluate it": a copied export_fpga failed and ended the run)."""
    read = {ref[0] for s in plan.steps for v in s.arguments.values() for ref in _references(v)}
    unasked = {s.number for s in plan.steps if s.tool in _EXPORTS and s.tool not in asked and s.number not in read
               and s.tool not in request}
    if not unasked or len(unasked) == len(plan.steps):
        return plan
    notes = [f"step {s.number} ({s.tool}) dropped: the request asks for no such output" for s in plan.steps
             if s.number in unasked]
    answer = _answer_without(plan.answer, unasked)
    return Plan([s for s in plan.steps if s.number not in unasked], answer, [*plan.notes, *notes])


def _references(value: Any) -> list[tuple[int, str | None]]:
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    reference = step_reference(value)
    return [reference] if reference else []


# "run it twice", "the same generation as before": a repeat the user asked for is run (loop and planner alike)
ASKED_TO_REPEAT = re.compile(r"\b(twice|again|two times|three times|repeat|re-?run|once more|second time|same .* "
                             r"(?:as before|again))\b", re.IGNORECASE)


def drop_repeated_steps(plan: Plan, request: str) -> Plan:
    """The plan without steps that repeat an earlier step's tool and arguments exactly (a small model wrote the same
    η histogram six times and had no step left for the code asked for), their readers reading the first; kept when
    the request asks for a repeat ("run it twice")."""
    if ASKED_TO_REPEAT.search(request):
        return plan
    first: dict[str, int] = {}
    repeats: dict[int, str] = {}
    for step in plan.steps:
        key = f"{step.tool}:{sorted(step.arguments.items())!r}"
        if key in first:
            repeats[step.number] = f"${first[key]}"
        else:
            first[key] = step.number
    if not repeats:
        return plan
    steps = [Step(s.number, s.tool, {name: _instead(value, repeats) for name, value in s.arguments.items()})
             for s in plan.steps if s.number not in repeats]
    answer = re.sub(r"\{\$(\d+)", lambda m: "{" + repeats.get(int(m.group(1)), f"${m.group(1)}"), plan.answer)
    notes = [f"steps {', '.join(str(n) for n in repeats)} repeated earlier steps exactly; dropped"]
    return Plan(steps, answer, [*plan.notes, *notes])

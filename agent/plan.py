r"""Plans: the whole request as one constrained reply, checked against every schema before anything runs.

A plan (ReWOO / LLMCompiler style) is a list of steps — a tool and its arguments — and an answer
template. An argument may reference an earlier step's output instead of an id nobody knows yet:

- ``"$2.jets"`` — the artifact in field ``jets`` of step 2's result;
- ``"$2"`` — step 2's first artifact.

The answer template names values of the results by placeholder (``{$3.peak}``, ``{hist-3f2a9c1b7d:mean}``;
see :mod:`physagent.agent.claims`). :func:`check_plan` refuses a plan with an unknown tool, an argument
the tool's schema rejects, a reference to a later, missing or failed step or to a field that is no
artifact, an artifact id the session does not hold, or a placeholder to a field the result lacks —
all problems at once, so the model can fix them in one reply.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from physagent.agent.agent_tools import is_known, spec
from physagent.agent.arguments import fill_stated_arguments
from physagent.agent.claims import Placeholder, find_placeholders, is_single_value, result_field_type
from physagent.agent.cuts import multiplicity_asked, selection_from_words
from physagent.agent.prompting import inline_refs
from physagent.tools import ARTIFACT_ID_PATTERN, Artifact, ToolInputError, ToolSpec

__all__ = [
    "DATA_MAKERS", "PLAN_TOOL", "Plan", "PlanError", "Step", "artifact_fields", "asked_actions", "check_plan",
    "complete_plan", "missing_actions", "parse_plan", "plan_schema", "resolve_arguments", "step_reference",
    "with_derived_steps",
]

PLAN_TOOL = "submit_plan"
MAX_STEPS = 8
_REFERENCE = re.compile(r"^\$(\d+)(?:\.(\w+))?$")
_ID = re.compile(ARTIFACT_ID_PATTERN)


@dataclass(frozen=True)
class Step:
    """One planned tool call; ``number`` counts from 1 across replans."""

    number: int
    tool: str
    arguments: dict[str, Any]


@dataclass
class Plan:
    """Steps to run in order, and the answer to render from their results."""

    steps: list[Step]
    answer: str = ""
    notes: list[str] = field(default_factory=list)


class PlanError(ValueError):
    """A plan that must not run; ``problems`` lists each reason in words the model can act on."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def step_reference(value: Any) -> tuple[int, str | None] | None:
    """``(step, field)`` when ``value`` is a reference such as ``"$2.jets"``, else None."""
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return (int(match.group(1)), match.group(2)) if match else None


def plan_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``submit_plan`` tool: its parameters hold every step's tool and that tool's own argument schema.

    Artifact arguments stay strings, so a reference (``"$1.events"``) passes the grammar; the checker
    then validates it.
    """
    shapes = [{"type": "object",
               "properties": {"tool": {"const": t["name"]}, "arguments": _lenient(inline_refs(t["parameters"]))},
               "required": ["tool", "arguments"], "additionalProperties": False} for t in tools]
    return {
        "name": PLAN_TOOL,
        "description": "Submit the whole plan: the tool calls in order, then the answer with placeholders.",
        "parameters": {
            "type": "object",
            "properties": {
                "steps": {"type": "array", "items": {"anyOf": shapes}, "maxItems": MAX_STEPS,
                          "description": "Tool calls in order; '$N.field' uses step N's output."},
                "answer": {"type": "string",
                           "description": "The answer; write values as {$N.field} placeholders, never as numbers."},
            },
            "required": ["steps", "answer"],
            "additionalProperties": False,
        },
    }


def _lenient(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters schema without id patterns, so a ``$N.field`` reference fits where an id goes."""
    if isinstance(parameters, dict):
        return {k: _lenient(v) for k, v in parameters.items() if not (k == "pattern" and v == ARTIFACT_ID_PATTERN)}
    if isinstance(parameters, list):
        return [_lenient(v) for v in parameters]
    return parameters


def parse_plan(arguments: Mapping[str, Any], first_number: int = 1) -> Plan:
    """A :class:`Plan` from the ``submit_plan`` arguments a model sent.

    Raises:
        PlanError: the reply is not a list of ``{"tool", "arguments"}`` steps with a string answer.
    """
    steps_in = arguments.get("steps")
    if not isinstance(steps_in, list):
        raise PlanError([f"'steps' must be a list of {{'tool', 'arguments'}} objects, got {steps_in!r}"])
    steps, problems = [], []
    for offset, raw in enumerate(steps_in):
        number = first_number + offset
        if not isinstance(raw, dict) or not isinstance(raw.get("tool"), str):
            problems.append(f"step {number} must be an object with 'tool' and 'arguments', got {raw!r}")
            continue
        steps.append(Step(number, raw["tool"], dict(raw.get("arguments") or {})))
    answer = arguments.get("answer", "")
    if not isinstance(answer, str):
        problems.append(f"'answer' must be text, got {answer!r}")
    if problems:
        raise PlanError(problems)
    return Plan(steps, answer if isinstance(answer, str) else "")


@dataclass(frozen=True)
class _Known:
    """What the checker may rely on: finished steps' outputs and the session's artifacts."""

    done: Mapping[int, tuple[str, BaseModel]]  # step → (tool, result) of steps that succeeded earlier
    artifacts: Mapping[str, str]  # id → kind, every artifact the session may use
    offered: tuple[str, ...]


def check_plan(plan: Plan, offered: list[str], artifacts: Mapping[str, str],
               done: Mapping[int, tuple[str, BaseModel]] | None = None) -> None:
    """Refuse, before anything runs, a plan that cannot work (module docstring); list every problem.

    Args:
        plan: the steps and the answer template.
        offered: tools the model was offered.
        artifacts: id → kind of every artifact the plan may name literally.
        done: results of steps finished before a replan, by step number.

    Raises:
        PlanError: one or more problems.
    """
    known = _Known(done or {}, artifacts, tuple(offered))
    planned: dict[int, str] = {}
    problems: list[str] = []
    for step in plan.steps:
        problems += _step_problems(step, planned, known)
        planned[step.number] = step.tool
    problems += _answer_problems(plan.answer, planned, known)
    if problems:
        raise PlanError(problems)


def _step_problems(step: Step, planned: Mapping[int, str], known: _Known) -> list[str]:
    if step.tool == PLAN_TOOL or not is_known(step.tool):
        return [f"step {step.number}: there is no tool {step.tool!r}; use one of {', '.join(known.offered)}"]
    tool_spec = spec(step.tool)
    problems = [p for name, value in step.arguments.items()
                for p in _value_problems(step, name, value, planned, known)]
    if problems:
        return problems
    try:
        tool_spec.validate(_with_placeholder_ids(step.arguments))
    except ToolInputError as error:
        return [f"step {step.number}: {error}"]
    return []


def _value_problems(step: Step, name: str, value: Any, planned: Mapping[int, str], known: _Known) -> list[str]:
    if isinstance(value, list):
        return [p for item in value for p in _value_problems(step, name, item, planned, known)]
    reference = step_reference(value)
    if reference is not None:
        return _reference_problems(step, name, reference, planned, known)
    if (name == "path" or name.endswith("_path")) and isinstance(value, str) and value in known.artifacts:
        return [f"step {step.number}: {name}={value!r} is an artifact of this session, not a file: it needs no "
                f"reading; give {value!r} to the parameter of the tool that uses it"]
    if isinstance(value, str) and _ID.match(value) and value not in known.artifacts:
        listed = ", ".join(f"{i} ({k})" for i, k in known.artifacts.items()) or "none yet"
        return [f"step {step.number}: {name}={value!r} is not an artifact of this session (session artifacts: "
                f"{listed}); use '$N.field' for the output of an earlier step"]
    return []


def _reference_problems(step: Step, name: str, reference: tuple[int, str | None], planned: Mapping[int, str],
                        known: _Known) -> list[str]:
    number, field_name = reference
    tool = planned.get(number) or (known.done[number][0] if number in known.done else None)
    if number >= step.number or tool is None:
        return [f"step {step.number}: {name}='${number}{'.' + field_name if field_name else ''}' refers to step "
                f"{number}, which does not come before it; refer to an earlier step"]
    if not is_known(tool):
        return []  # the unknown tool itself is reported with its step
    fields = artifact_fields(spec(tool))
    if field_name is not None and field_name not in fields:
        return [f"step {step.number}: {name} refers to '{field_name}' of step {number} ({tool}), which is no "
                f"artifact; its artifacts are {', '.join(fields) or 'none'}"]
    if not fields:
        return [f"step {step.number}: {name} refers to step {number} ({tool}), which makes no artifact"]
    return []


def artifact_fields(spec: ToolSpec) -> list[str]:
    """Result fields that hold an artifact (or a list of them)."""
    return [name for name, info in spec.result_model.model_fields.items()
            if Artifact in {info.annotation, *typing.get_args(info.annotation)}]


def _with_placeholder_ids(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments with each reference replaced by a well-formed id, so the schema check can run."""
    def replace(value: Any) -> Any:
        if isinstance(value, list):
            return [replace(item) for item in value]
        return "ref-0000000000" if step_reference(value) else value

    return {name: replace(value) for name, value in arguments.items()}


def _answer_problems(answer: str, planned: Mapping[int, str], known: _Known) -> list[str]:
    problems = []
    for placeholder in find_placeholders(answer):
        problem = _placeholder_problem(placeholder, planned, known)
        if problem:
            problems.append(f"answer: {problem}")
    return problems


def _placeholder_problem(placeholder: Placeholder, planned: Mapping[int, str], known: _Known) -> str | None:
    if placeholder.step is not None:
        tool = planned.get(placeholder.step) or (known.done.get(placeholder.step, ("", None))[0] or None)
        if tool is None:
            return f"{placeholder.text} names step {placeholder.step}, which the plan does not have"
        if not is_known(tool):
            return None  # the unknown tool itself is reported with its step
        model: type[BaseModel] = spec(tool).result_model
    elif placeholder.artifact not in known.artifacts:
        return f"{placeholder.text} names {placeholder.artifact}, which is not an artifact of this session"
    else:
        return None  # an earlier turn's result: checked when it is rendered
    annotation = result_field_type(model, placeholder.path)
    if annotation is None:
        fields = ", ".join(n for n in model.model_fields if n not in artifact_fields(spec(tool)))
        return f"{placeholder.text}: {tool} results have no field {placeholder.path!r}; they have {fields}"
    if annotation is not Any and not is_single_value(annotation):
        return (f"{placeholder.text} is a list or a group of values, not one value; name one entry "
                f"(e.g. {placeholder.path}.0 or a key inside it)")
    return None


# verbs of a request, used as orders ("…, cluster jets and plot it"; not "the Cluster Scanning method"),
# and the tool that does them: a plan that leaves one out skipped what was asked
_LEAD = r"(?:^|[,;:]\s*|[.!?]\s+|\b(?:and|then|please|also|to|now|you|me|i want to|let's)\s+)"
_CLAUSE = r"(?:[^.]|\.(?=\w))*"  # the rest of a sentence: a file suffix (".root") ends none
_FLOW = r"(?<!particle )(?<!energy )flow(?! networks?)"  # a Particle/Energy Flow Network is a tagger
_ACTIONS = {
    # "draw 500 new jets from it" samples, it does not plot
    "plot": re.compile(_LEAD + r"(?:plot|draw(?!\s+(?:[\d,.]+k?\s+)?(?:new |more |fresh )?(?:jets|events|samples|"
                       r"showers|points|values|numbers|rows)\b|\s+from\b))\b", re.IGNORECASE),
    "cluster_jets": re.compile(_LEAD + rf"(?:(?:re)?cluster|(?:find|build|reconstruct)\b{_CLAUSE}\bjets)\b",
                               re.IGNORECASE),
    "histogram": re.compile(_LEAD + r"histogram\b", re.IGNORECASE),
    "export_session": re.compile(_LEAD + r"export\b.*\b(script|session|what we did)\b|"
                                 r"\bscript\b[^.]*\b(?:recreat|reproduc|replay|redo|rerun)\w*|"
                                 r"\b(?:recreat|reproduc|replay)\w*\b[^.]*\b(?:session|conversation|everything we)",
                                 re.IGNORECASE),
    "train_tagger": re.compile(_LEAD + r"train\b(?![^.]*\b(?:generator|surrogate|generative|" + _FLOW + r"|caloflow|"
                                          r"point[- ]?cloud|diffusion|autoencoder|anomal\w*|cathode|cwola|"
                                          r"sidebands?|signal region|npe|nle|nre|sbi|posteriors?|likelihoods?|"
                                          r"inference|priors?)\b)", re.IGNORECASE),
    "evaluate_tagger": re.compile(_LEAD + r"(?:evaluate|compare)\b[^.]*\b(?:tagger|model|classifier)s?\b|"
                                  r"\broc\b|\bevaluate (?:it|them)\b[^.]*\b(?:auc|split|rejection|accuracy)",
                                  re.IGNORECASE),
    "train_generator": re.compile(_LEAD + r"train\b[^.]*\b(?:generator|surrogate|generative|" + _FLOW + r"|caloflow|"
                                  r"point[- ]?cloud|diffusion)\b", re.IGNORECASE),
    "compare_samples": re.compile(
        r"\btells?\b[^.]*\b(?:apart|from the (?:real|original|simulat\w*))\b|\bcompatib|\btwo[- ]sample|"
        r"\bdistinguish|\bhow (?:faithful|close|similar)\b|"
        r"\bcompare\b[^.]*\b(?:samples?|showers?|simulat\w*|original|real)\b", re.IGNORECASE),
    "write_root": re.compile(_LEAD + rf"(?:save|write|store|export)\b{_CLAUSE}\broot\b", re.IGNORECASE),
    "export_histograms": re.compile(_LEAD + rf"(?:save|write|store|export|put|turn|convert)\b{_CLAUSE}"
                                    r"(?:\broot\b|\bth[12][dfi]?\b)", re.IGNORECASE),
    "write_hepmc": re.compile(_LEAD + rf"(?:save|write|store|export|convert|put|turn|give|hand)\b{_CLAUSE}"
                              r"\bhepmc3?\b", re.IGNORECASE),
    "merge_samples": re.compile(_LEAD + r"merge\b", re.IGNORECASE),
    # code the user asks for by name ("with a short Python script"); "export … as a Python script" is the session's
    "write_code": re.compile(r"\b(?:with|using|in|write)\s+(?:a |some )?(?:short |small |little |quick )?"
                             r"(?:python\b(?:\s+(?:script|code))?|script|code)\b", re.IGNORECASE),
    "detector_response": re.compile(_LEAD + r"(?:pass|run|put|send|push|feed|process|take|smear)\w*\b[^.]*?"
                                    r"(?<!anomaly )(?<!anomaly-)\bdetector\b|\bdetector (?:simulation|response|"
                                    r"smearing)\b", re.IGNORECASE),
    "bump_hunt": re.compile(r"\bbump[- ]?hunt|\bfit\b[^.]*\b(?:sidebands?|dijet mass|m_?jj)\b", re.IGNORECASE),
    "export_fpga": re.compile(_LEAD + r"(?:export|convert|translate|put|turn)\b[^.]*\b(?:fpgas?|hls4ml|firmware|"
                              r"conifer)\b", re.IGNORECASE),
    # a question about physagent's own tools: the catalogue collection answers it, not a call of the tool it guesses
    "search_knowledge": re.compile(r"\btool catalog(?:ue)?\b|\bcatalog(?:ue)? of (?:your |the )?tools\b",
                                   re.IGNORECASE),
    "scan_training": re.compile(r"\bhyper-?parameter scan|\bgrid search\b|\b(?:scan|compare|try)\b[^.]*\b"
                                r"(?:learning[- ]?rates?|batch[- ]?sizes?|weight[- ]?decays?)\b|"
                                r"\bscan\b[^.]*\bover the sizes\b", re.IGNORECASE),
}
_DOING = {"plot": "plot", "cluster_jets": "cluster jets", "histogram": "histogram", "export_session":
          "export the session", "train_tagger": "train a tagger", "write_root": "write a ROOT file",
          "evaluate_tagger": "evaluate the tagger", "train_generator": "train a generator",
          "compare_samples": "compare two samples", "bump_hunt": "fit the m_jj spectrum (bump hunt)",
          "export_fpga": "export the model to FPGA firmware", "write_hepmc": "write a HepMC3 file",
          "export_histograms": "write the histograms to a ROOT file", "merge_samples": "merge the samples",
          "detector_response": "simulate the detector response", "write_code": "compute it with code",
          "summarize": "count the events passing a selection", "scan_training": "scan training hyper-parameters",
          "search_knowledge": "search the tool catalogue"}
# the order added steps run in: jets of the detector-level events, a histogram of the merged sample, a plot of
# the histogram, the export last
_PIPELINE = ("detector_response", "cluster_jets", "merge_samples", "histogram", "plot")
# ROOT output of histograms ("put hist-… into a .root file as TH1s") is export_histograms, of data write_root
_OF_HISTOGRAMS = re.compile(r"\bhistograms?\b|\bth[12][dfi]?s?\b|\bhist-[0-9a-f]{10}\b", re.IGNORECASE)


def missing_actions(request: str, plan: Plan, offered: list[str], artifacts: Mapping[str, str]) -> list[str]:
    """Tools the request's verbs ask for ("plot", "cluster", "train") that an offered tool does but no step
    calls. A histogram already in the session satisfies "plot that histogram"."""
    if not plan.steps:
        return []
    planned = {step.tool for step in plan.steps}
    return [f"the request asks to {_DOING[tool]}, but no step calls {tool}"
            for tool in asked_actions(request, offered, artifacts) if tool not in planned]


DATA_MAKERS = ("generate_events", "detector_response", "cluster_jets", "read_table", "read_root")


def complete_plan(plan: Plan, request: str, offered: list[str], artifacts: Mapping[str, str],
                  messages: list[dict[str, Any]] | None = None) -> Plan:
    """The plan with a step added for each action the request orders that no step does, where the step
    follows from the plan alone: "plot" → ``plot`` of the plan's histograms, "save … ROOT" →
    ``write_root`` of the last data the plan makes, "export … script" → ``export_session`` last. An
    added step takes the settings the user wrote (``messages``, default: the request): "in CMS style",
    "as an RNTuple". A small model often drops the last verb of a long request; the added step is named
    in the notes. The plan comes back unchanged when nothing is missing or the completed plan would not check."""
    completed = with_derived_steps(plan, request, offered, artifacts, messages)
    try:
        check_plan(completed, offered, artifacts)
    except PlanError:
        return plan
    return completed


def with_derived_steps(plan: Plan, request: str, offered: list[str], artifacts: Mapping[str, str],
                       messages: list[dict[str, Any]] | None = None) -> Plan:
    """:func:`complete_plan` before the check: the caller may want to know why a derived step would not run."""
    messages = messages or [{"role": "user", "content": request}]
    missing = [tool for tool in asked_actions(request, offered, artifacts)
               if tool not in {step.tool for step in plan.steps}]
    steps = list(plan.steps)
    for tool in sorted(missing, key=_pipeline_rank):
        arguments = _derived_arguments(tool, steps, artifacts, request)
        parameters = spec(tool).parameters_schema()
        if arguments is not None:
            arguments = fill_stated_arguments(arguments, parameters, messages, model_wrote=set())
            if set(parameters.get("required", [])) <= set(arguments):  # "histogram it": which field is not said
                steps.append(Step(max((s.number for s in steps), default=0) + 1, tool, arguments))
    if len(steps) == len(plan.steps) or len(steps) > MAX_STEPS:
        return plan
    added_tools = {s.tool for s in steps[len(plan.steps):]}  # tools no step of the plan called
    # the model's answer quotes what it planned instead of the code (an η histogram's mean): written after the results
    answer = "" if "write_code" in added_tools else _with_added_values(plan.answer, steps[len(plan.steps):], request)
    for step in [s for s in steps[len(plan.steps):] if s.tool in _IN_PLACE]:
        steps, answer = _moved_into_pipeline(steps, answer, step)
    added = [f"step {s.number} ({s.tool}) added: the request asks to {_DOING[s.tool]}" for s in steps
             if s.tool in added_tools]
    return Plan(steps, answer, [*plan.notes, *added])


def _with_added_values(answer: str, added: list[Step], request: str) -> str:
    """The answer with the count of an added ``summarize`` step (a small model's sentence quotes something else),
    and the best point of an added ``scan_training``."""
    for step in added:
        if step.tool == "scan_training" and f"{{${step.number}." not in answer:
            n = step.number
            chosen = ", ".join(f"{name.replace('_', ' ')} {{${n}.best_parameters.{name}}}" for name in
                               step.arguments["grid"])
            answer += (f" Of {{${n}.n_points}} trainings the best ({chosen}) reached validation AUC "
                       f"{{${n}.best_validation_auc}} and test AUC {{${n}.best_test_auc}} ({{${n}.best_model}}).")
        if step.tool != "summarize" or f"{{${step.number}." in answer:
            continue
        if "selection" in step.arguments:
            answer += (f" {{${step.number}.n_events_passing}} of {{${step.number}.n_events}} events pass "
                       f"{step.arguments['selection']}.")
        else:
            collection = multiplicity_asked(request)
            answer += f" Mean number of {collection} per event: {{${step.number}.multiplicities.{collection}.mean}}."
    return answer.strip()


# added steps that turn data into data of the same kind (truth events → detector-level events): they go right after
# the step making their input, and the plan's later steps use their output instead
_IN_PLACE = ("detector_response",)


def _moved_into_pipeline(steps: list[Step], answer: str, added: Step) -> tuple[list[Step], str]:
    """``steps`` with ``added`` moved to right after the step it reads, renumbered in the new order, the later
    steps' references to that step's data now reading ``added``'s output; the answer's placeholders follow the
    renumbering. A step that reads no earlier step stays where it is."""
    source = next((ref[0] for value in added.arguments.values() if (ref := step_reference(value))), None)
    if source is None or not steps:
        return steps, answer
    others = [s for s in steps if s is not added]
    cut = next((i for i, s in enumerate(others) if s.number == source), len(others) - 1) + 1
    order = [*others[:cut], added, *others[cut:]]
    number = {s.number: steps[0].number + i for i, s in enumerate(order)}
    where = number[added.number]

    def moved(value: Any, after_added: bool) -> Any:
        if isinstance(value, list):
            return [moved(item, after_added) for item in value]
        ref = step_reference(value)
        if ref is None or ref[0] not in number:
            return value
        if after_added and ref[0] == source:  # the source's data now comes out of ``added``
            return f"${where}"
        return f"${number[ref[0]]}" + (f".{ref[1]}" if ref[1] else "")

    renumbered = [Step(number[s.number], s.tool, {k: moved(v, i > cut) for k, v in s.arguments.items()})
                  for i, s in enumerate(order)]
    answer = re.sub(r"\{\$(\d+)", lambda m: "{$" + str(number.get(int(m.group(1)), int(m.group(1)))), answer)
    return renumbered, answer


def _pipeline_rank(tool: str) -> int:
    if tool == "export_session":
        return len(_PIPELINE) + 1  # what the session made, so last
    return _PIPELINE.index(tool) if tool in _PIPELINE else len(_PIPELINE)


def _samples_to_compare(steps: list[Step], request: str) -> dict[str, Any] | None:
    """A generator's samples against the data it learned, or the two samples the request names by id."""
    sampled = [s for s in steps if s.tool == "sample_generator"]
    trained = {s.number: s for s in steps if s.tool == "train_generator"}
    if sampled:
        reference = step_reference(sampled[-1].arguments.get("generator"))
        training = trained.get(reference[0]) if reference else None
        source = training.arguments.get("source") if training else None
        return {"reference": source, "candidate": f"${sampled[-1].number}"} if source else None
    named = list(dict.fromkeys(re.findall(ARTIFACT_ID_PATTERN.strip("^$"), request)))
    return {"reference": named[0], "candidate": named[1]} if len(named) == 2 else None


# added steps that take the plan's (or session's) latest artifact of one of these kinds: (parameter, kinds)
_TAKES_LATEST = {"train_tagger": ("dataset", ("dataset",)), "train_generator": ("source", ("showers", "table", "jets")),
                 "histogram": ("source", ("events", "jets", "table")), "write_hepmc": ("events", ("events",)),
                 "detector_response": ("events", ("events",)), "cluster_jets": ("events", ("events",))}
# added steps that take every earlier step of a tool: (parameter, tool, at least, at most)
_TAKES_STEPS = {"plot": ("histograms", "histogram", 1, 8), "merge_samples": ("samples", "generate_events", 2, 50)}


def _derived_arguments(tool: str, steps: list[Step], artifacts: Mapping[str, str],
                       request: str = "") -> dict[str, Any] | None:
    made = _latest_made(steps, artifacts)
    if tool in _TAKES_LATEST:
        parameter, kinds = _TAKES_LATEST[tool]
        found = next((made[kind] for kind in kinds if kind in made), None)
        return {parameter: found} if found else None
    if tool in _TAKES_STEPS:
        parameter, maker, fewest, most = _TAKES_STEPS[tool]
        references = [f"${s.number}" for s in steps if s.tool == maker][-most:]
        if not references and fewest == 1 and _MAKES.get(maker) in made:  # "draw that histogram again"
            references = [made[_MAKES[maker]]]
        return {parameter: references} if len(references) >= fewest else None
    if tool == "evaluate_tagger":
        models = [f"${s.number}" for s in steps if s.tool == "train_tagger"][-8:]
        models = models or ([made["model"]] if "model" in made else [])
        return {"models": models} if models else None
    if tool == "bump_hunt":
        return _scores_to_fit(steps) or ({"source": made["anomaly_dataset"]} if "anomaly_dataset" in made else None)
    if tool == "write_root":
        data = [s for s in steps if s.tool in DATA_MAKERS]
        return {"source": f"${data[-1].number}"} if data else _session_data(made, request)
    if tool == "summarize":
        return _selection_to_count(made, request)
    if tool == "write_code":
        return _code_to_write(made, request)
    if tool == "scan_training":
        return _scan_to_run(made, request)
    if tool == "search_knowledge":
        return {"query": request.strip()[:500], "collection": "tools"}
    derive = {"compare_samples": lambda: _samples_to_compare(steps, request), "export_session": dict,
              "export_fpga": lambda: _model_to_export(steps, made, request),
              "export_histograms": lambda: _histograms_to_export(steps, artifacts, request)}.get(tool)
    return derive() if derive else None


_NUMBER = r"\d+(?:\.\d+)?(?:e-?\d+)?"
_LISTED = rf"\s*(?:of|=|:)?\s*({_NUMBER}(?:\s*(?:,|and|or|vs\.?|versus)\s*{_NUMBER})+)"
# the trainer's parameters a request scans, as written: "batch sizes 32 and 128", "learning rates 1e-3, 3e-3"
_SCANNED = {"batch_size": (re.compile(rf"\bbatch[- ]?sizes?{_LISTED}", re.IGNORECASE), int),
            "learning_rate": (re.compile(rf"\blearning[- ]?rates?{_LISTED}", re.IGNORECASE), float),
            "weight_decay": (re.compile(rf"\bweight[- ]?decays?{_LISTED}", re.IGNORECASE), float)}
_SIZES_SCANNED = re.compile(r"\bsizes?\s*(?:of\s*)?((?:tiny|small|large)(?:\s*(?:,|and|or)\s*(?:tiny|small|large))+)",
                            re.IGNORECASE)


def _scan_to_run(made: dict[str, str], request: str) -> dict[str, Any] | None:
    """``scan_training`` of the session's dataset over the values the request lists ("compare batch sizes 32 and
    128 for a tiny MLP tagger" → grid ``{"batch_size": [32, 128]}``, fixed ``{"model": "mlp", "size": "tiny"}``)."""
    if "dataset" not in made:
        return None
    grid: dict[str, list[Any]] = {}
    for parameter, (written, kind) in _SCANNED.items():
        if found := written.search(request):
            grid[parameter] = [kind(float(n)) for n in re.findall(_NUMBER, found.group(1))]
    if sizes := _SIZES_SCANNED.search(request):
        grid["size"] = re.findall(r"tiny|small|large", sizes.group(1).lower())
    if not grid:
        return None
    stated = fill_stated_arguments({}, spec("train_tagger").parameters_schema(), [{"role": "user", "content": request}],
                                   model_wrote=set())
    fixed = {k: v for k, v in stated.items() if k not in grid and k not in ("dataset", "seed")}
    return {"dataset": made["dataset"], "grid": grid, **({"fixed": fixed} if fixed else {})}


def _code_to_write(made: dict[str, str], request: str) -> dict[str, Any] | None:
    """``write_code`` of the latest data for code the request asks for by name ("then with a short Python script
    take the two hardest muons … and report their average"): the task is what the request asks of the code
    (:func:`_code_task`), the value named by the statistic asked for."""
    data = next((made[kind] for kind in ("jets", "events", "table") if kind in made), None)
    asked = _ACTIONS["write_code"].search(request)
    if data is None or asked is None:
        return None
    task = _code_task(request, asked.start())
    statistic = next((name for word, name in _CODE_VALUES if re.search(rf"\b{word}", request, re.IGNORECASE)),
                     "result")
    return {"task": task, "inputs": [data], "values": {statistic: "float"}}


def _code_task(request: str, asked_at: int) -> str:
    """The sentence asking for code, from after the clause that makes the data ("Generate 300 … events with MPI off,
    fill m-hat … into 20 bins and fit a Gaussian to them in Python; give me σ" → "fill m-hat … give me σ"): the code
    reads the data, it does not make it."""
    start = max((m.end() for m in re.finditer(r"[.!?]\s+", request[:asked_at])), default=0)
    made = list(_MAKES_DATA.finditer(request, start, asked_at))
    if made:
        start = next((m.end() for m in _CLAUSE_END.finditer(request, made[-1].end(), asked_at)), start)
    return re.sub(r"^(?:and|then)\s+", "", request[start:].strip(" ,;:"), flags=re.IGNORECASE)[:1000]


_MAKES_DATA = re.compile(r"\b(?:generate|make|produce|simulate|create)\b[^,;.]*?\bevents?\b", re.IGNORECASE)
_CLAUSE_END = re.compile(r",\s*|;\s*|(?<!\d)\s+and\s+|\s+then\s+", re.IGNORECASE)
# the value a derived code step prints, by the word that asks for it
_CODE_VALUES = (("average|mean", "mean"), ("median", "median"), ("fraction|share|efficiency", "fraction"),
                ("width|sigma|resolution", "width"), ("standard deviation|spread|rms", "std"))


def _selection_to_count(made: dict[str, str], request: str) -> dict[str, Any] | None:
    """``summarize`` of the latest data with the selection the request's count question writes in words, or of the
    data holding the objects whose mean number per event it asks for."""
    selection, counted = selection_from_words(request), multiplicity_asked(request)
    if selection is None and counted is None:
        return None
    jets = (selection or counted or "").startswith(("jets", "count(jets."))
    source = made.get("jets" if jets else "events")
    if source is None:
        return None
    return {"source": source, "selection": selection} if selection else {"source": source}


def _session_data(made: dict[str, str], request: str) -> dict[str, Any] | None:
    """The session's one data artifact ("write those events to ROOT"); of one events and one jets artifact, the
    kind the request names."""
    data = {kind: made[kind] for kind in ("events", "jets", "table") if kind in made}
    named = [kind for kind in data if re.search(rf"\b{kind}\b", request, re.IGNORECASE)]
    if len(data) == 1 or len(named) == 1:
        return {"source": data[named[0]] if len(named) == 1 else next(iter(data.values()))}
    return None


def _histograms_to_export(steps: list[Step], artifacts: Mapping[str, str], request: str) -> dict[str, Any] | None:
    """The histograms the request names by id, else the plan's; with the keys it gives ("called mll and ptll")."""
    named = [i for i in dict.fromkeys(_ID_IN_TEXT.findall(request)) if artifacts.get(i) == "histogram"]
    histograms = named or [f"${s.number}" for s in steps if s.tool == "histogram"][-50:]
    if not histograms:
        return None
    keys = _KEYS_GIVEN.search(request)
    names = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", keys.group(1)) if keys else []
    return {"histograms": histograms, **({"names": names} if len(names) == len(histograms) else {})}


_ID_IN_TEXT = re.compile(ARTIFACT_ID_PATTERN.strip("^$"))
_KEYS_GIVEN = re.compile(r"\b(?:called|named|as keys?|keys?)\s+([A-Za-z_]\w*(?:\s*,\s*(?:and\s+)?[A-Za-z_]\w*|"
                         r"\s+and\s+[A-Za-z_]\w*)*)")


def _model_to_export(steps: list[Step], made: dict[str, str], request: str) -> dict[str, Any] | None:
    """The plan's (or session's) model, compared on its dataset when the request asks what fixed point costs;
    none when a precision scan already makes the project."""
    if "model" not in made or any(s.tool == "scan_precision" for s in steps):
        return None
    arguments = {"model": made["model"]}
    if "dataset" in made and _ASKS_FIDELITY.search(request):
        arguments["dataset"] = made["dataset"]
    return arguments


_ASKS_FIDELITY = re.compile(r"\b(?:auc|compar\w*|cost\w*|los[es]\w*|accura\w*|fidelity|differ\w*|degrad\w*)\b",
                            re.IGNORECASE)


_MAKES = {"generate_events": "events", "make_jet_dataset": "dataset", "train_tagger": "model",
          "simulate_showers": "showers", "read_calochallenge": "showers", "cluster_jets": "jets",
          "make_anomaly_dataset": "anomaly_dataset", "make_monitoring_data": "monitoring",
          "merge_samples": "events", "detector_response": "events", "histogram": "histogram"}
_READS_AS = {"read_table": ("table", "events"), "read_root": ("table", "events")}
_SEARCHES = ("autoencoder_search", "cwola_hunt", "cathode_search", "reference_anomaly_classifier")


def _scores_to_fit(steps: list[Step]) -> dict[str, Any] | None:
    """The anomaly scores of the plan's last search, for a bump hunt on its most anomalous events."""
    searches = [s for s in steps if s.tool in _SEARCHES]
    return {"source": f"${searches[-1].number}.scores"} if searches else None


def _latest_made(steps: list[Step], artifacts: Mapping[str, str]) -> dict[str, str]:
    """The artifact of each kind a derived step would take: the plan's last of that kind (a reference) or,
    failing that, the session's only one (with two, which one the user means is not derivable)."""
    kinds = list(artifacts.values())
    made = {kind: artifact_id for artifact_id, kind in artifacts.items() if kinds.count(kind) == 1}
    for step in steps:
        if step.tool in _MAKES:
            made[_MAKES[step.tool]] = f"${step.number}"
        for kind in _READS_AS.get(step.tool, ()):  # a file is events or a table: read, it serves as either
            made[kind] = f"${step.number}"
    return made


def asked_actions(request: str, offered: list[str], artifacts: Mapping[str, str]) -> list[str]:
    """The tools the request's verbs order, among those offered."""
    asked = []
    histograms_out = _writes_histograms(request)
    for tool, verb in _ACTIONS.items():
        if tool in offered and verb.search(request):
            if tool == "histogram" and "histogram" in artifacts.values():
                continue
            if (tool == "write_root" and histograms_out) or (tool == "export_histograms" and not histograms_out):
                continue
            asked.append(tool)
    if "summarize" in offered and (selection_from_words(request) or multiplicity_asked(request)):
        asked.append("summarize")  # "how many events have a leading muon above …", "how many jets per event"
    if "export_session" in asked and "write_code" in asked:  # "write a script to reproduce this session"
        asked.remove("write_code")
    if "scan_training" in asked and "evaluate_tagger" in asked and not re.search(r"\bevaluate\b", request, re.I):
        asked.remove("evaluate_tagger")  # "compare batch sizes 32 and 128 for a tagger" is the scan's comparison
    return asked


def _writes_histograms(request: str) -> bool:
    """Whether what the request writes to ROOT is histograms: named in the sentence of the writing verb, from it on
    ("put hist-… and hist-… into a .root file", "save the mass histograms to ROOT as TH1s"; not "histogram the
    mass and save the events to ROOT")."""
    verb = _ACTIONS["export_histograms"].search(request)
    return bool(verb and _OF_HISTOGRAMS.search(re.split(r"[.;!?](?:\s|$)", request[verb.start():])[0]))


def resolve_arguments(arguments: dict[str, Any], outputs: Mapping[int, list[tuple[str, Artifact]]]
                      ) -> dict[str, Any]:
    """Arguments with every reference replaced by the artifact id the earlier step made.

    ``outputs`` maps a finished step to its (field name, artifact) pairs, in field order.
    """
    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(item) for item in value]
        reference = step_reference(value)
        if reference is None:
            return value
        number, field_name = reference
        made = outputs[number]
        return next(a.id for name, a in made if field_name in (None, name))

    return {name: resolve(value) for name, value in arguments.items()}

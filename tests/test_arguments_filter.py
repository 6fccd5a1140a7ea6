"""Small-model argument hygiene: optional arguments nobody stated are dropped before the tool runs."""

from __future__ import annotations

from physagent.agent.arguments import keep_stated_arguments
from physagent.tools import Workspace, registry

PARAMETERS = registry.get("generate_events").parameters_schema()


def _user(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are physagent. Use seed 99."}, {"role": "user", "content": text}]


def test_invented_optional_numbers_and_switches_are_dropped() -> None:
    """The 0.5B model's extra pt_hat_max_gev=20 and isr=false vanish; what the user said stays."""
    invented = {"process": "drell_yan_mumu", "n_events": 300, "seed": 4, "mpi": False, "isr": False,
                "pt_hat_max_gev": 20.0, "m_hat_min_gev": 60.0}
    kept = keep_stated_arguments(invented, PARAMETERS, _user("Generate 300 Drell-Yan events, seed 4, MPI off"))
    assert kept == {"process": "drell_yan_mumu", "n_events": 300, "seed": 4, "mpi": False}


def test_numbers_from_tool_observations_and_spelling_variants_are_kept() -> None:
    """A number a tool reported may be reused; 'hadronization' states the hadronisation switch."""
    messages = [*_user("switch off hadronization"), {"role": "tool", "content": "generate_events OK. n_events 750"}]
    kept = keep_stated_arguments({"process": "ttbar", "n_events": 750, "hadronisation": False, "seed": 99},
                                 PARAMETERS, messages)
    assert kept == {"process": "ttbar", "n_events": 750, "hadronisation": False}


def test_stated_choices_the_model_left_out_are_filled_in() -> None:
    """'all-hadronic' sets decay, 'MPI off' sets mpi, 'leading' sets object_index — when the model forgot."""
    from physagent.agent.arguments import fill_stated_arguments

    request = _user("Generate 200 all-hadronic ttbar events with MPI off")
    assert fill_stated_arguments({"process": "ttbar", "n_events": 200}, PARAMETERS, request) == {
        "process": "ttbar", "n_events": 200, "decay": "hadronic", "mpi": False}
    histogram = registry.get("histogram").parameters_schema()
    filled = fill_stated_arguments({"source": "jet-0123456789", "field": "jets.mass"}, histogram,
                                   _user("histogram the leading jet mass"))
    assert filled["object_index"] == 0
    ambiguous = fill_stated_arguments({"process": "ttbar"}, PARAMETERS, _user("leptonic or hadronic, you choose"))
    assert "decay" not in ambiguous


def test_the_process_the_user_named_wins_over_the_models_guess() -> None:
    """'top quark pair' means ttbar even when a small model picked w_jets; two named processes stay ambiguous."""
    from physagent.agent.arguments import fill_stated_arguments

    fixed = fill_stated_arguments({"process": "w_jets", "n_events": 2000}, PARAMETERS,
                                  _user("Generate 2000 boosted top quark pair events"))
    assert fixed["process"] == "ttbar"
    both = fill_stated_arguments({"process": "w_jets"}, PARAMETERS, _user("compare top quark pair and dijet events"))
    assert both["process"] == "w_jets"


def test_a_number_written_next_to_a_parameter_name_fills_it() -> None:
    """'seed 4' sets seed when the model forgot; '30 bins' sets bins; two different seeds stay unset."""
    from physagent.agent.arguments import fill_stated_arguments

    assert fill_stated_arguments({"process": "ttbar"}, PARAMETERS, _user("ttbar with seed 4"))["seed"] == 4
    histogram = registry.get("histogram").parameters_schema()
    filled = fill_stated_arguments({"source": "ev-0123456789", "field": "pt_hat_gev"}, histogram,
                                   _user("histogram pt_hat in 30 bins"))
    assert filled["bins"] == 30
    assert "seed" not in fill_stated_arguments({"process": "ttbar"}, PARAMETERS, _user("seed 4 or seed 5"))


def test_a_span_written_after_a_quantity_fills_its_min_and_max() -> None:
    """'energies flat between 10 and 100 GeV' → energy_min_gev/energy_max_gev (a small model wrote energy_gev=20 from
    '20 degrees'); 'jet pT from 300 to 400 GeV' → pt_min_gev/pt_max_gev; two spans for one quantity stay unset."""
    from physagent.agent.arguments import fill_stated_arguments

    showers = registry.get("simulate_showers").parameters_schema()
    filled = fill_stated_arguments({"n_showers": 150, "energy_gev": 20, "theta_deg": 20}, showers, _user(
        "Shoot 150 electrons at 20 degrees from the normal, with energies flat between 10 and 100 GeV"))
    assert (filled["energy_min_gev"], filled["energy_max_gev"]) == (10, 100)
    dataset = registry.get("make_jet_dataset").parameters_schema()
    assert fill_stated_arguments({"task": "w_vs_qcd"}, dataset, _user("W jets with jet pT from 300 to 400 GeV")) == {
        "task": "w_vs_qcd", "pt_min_gev": 300, "pt_max_gev": 400}
    two = fill_stated_arguments({}, dataset, _user("pT between 300 and 400 GeV or pT between 500 and 600 GeV"))
    assert "pt_min_gev" not in two


def test_a_phrase_states_a_number_and_an_examples_derived_value_does_not_leak() -> None:
    """'no thick rear section' sets n_thick_layers=0; a request that says nothing of it loses the model's 0."""
    from physagent.agent.arguments import clean_arguments

    showers = registry.get("simulate_showers").parameters_schema()
    assert clean_arguments({"n_showers": 400, "n_layers": 40}, showers, _user(
        "40 layers with no thick rear section, 400 showers"))["n_thick_layers"] == 0
    assert "n_thick_layers" not in clean_arguments({"n_showers": 200, "energy_gev": 50, "n_thick_layers": 0},
                                                   showers, _user("Simulate 200 photon showers of 50 GeV"))


def test_a_switch_an_example_states_in_words_is_not_a_derived_value() -> None:
    """An example 'without hadronisation' gives hadronisation=false because it says so: the model's copy for a request
    that never mentions it is dropped; 'boosted' → a p̂T cut the example's words do not write stays derived."""
    from physagent.agent.context import RequestContext
    from physagent.agent.examples import WorkedExample

    partons = WorkedExample("Jets from partons only: 200 ttbar events without hadronisation",
                            [{"tool": "generate_events", "arguments": {"process": "ttbar", "n_events": 200,
                                                                       "hadronisation": False}}], "", [], "x.yaml")
    boosted = WorkedExample("boosted top jets",
                            [{"tool": "generate_events", "arguments": {"process": "ttbar", "pt_hat_min_gev": 400}}],
                            "", [], "x.yaml")
    context = RequestContext("r", ["generate_events"], [partons, boosted], {}, [], [])
    assert context.example_values("generate_events") == {"pt_hat_min_gev": [400]}


def test_an_angle_in_degrees_fills_the_one_parameter_in_degrees() -> None:
    """'at 20 degrees' / 'at 35°' set theta_deg (the only *_deg parameter) over a model's 30; '2.5 mm' stays unset
    where several parameters are in mm."""
    from physagent.agent.arguments import fill_stated_arguments

    showers = registry.get("simulate_showers").parameters_schema()
    assert fill_stated_arguments({"theta_deg": 30}, showers, _user("electrons at 20 degrees"))["theta_deg"] == 20
    assert fill_stated_arguments({}, showers, _user("photons at 35° incidence, 2.5 mm cells")) == {"theta_deg": 35}


def test_a_path_copied_without_its_leading_slash_is_mended_to_the_one_the_user_wrote() -> None:
    """The request starts with an absolute path and the model writes it without the '/': the call gets the
    user's path; a path the user wrote as it is, or one that is the tail of none (or of two), stays."""
    from physagent.agent.arguments import mend_paths

    request = _user("/data/run3/dy_nanoaod.root is my NanoAOD file. Compare with ./old/dy.root and old/z.lhe.gz.")
    assert mend_paths({"path": "data/run3/dy_nanoaod.root", "tree": "Events"}, request) == {
        "path": "/data/run3/dy_nanoaod.root", "tree": "Events"}
    assert mend_paths({"lhe_path": "z.lhe.gz"}, request) == {"lhe_path": "old/z.lhe.gz"}
    assert mend_paths({"path": "./old/dy.root"}, request) == {"path": "./old/dy.root"}
    assert mend_paths({"path": "elsewhere.root"}, request) == {"path": "elsewhere.root"}
    two = _user("read /a/x.root or /b/x.root.")
    assert mend_paths({"path": "x.root"}, two) == {"path": "x.root"}


def test_a_path_moved_to_another_folder_or_given_a_gz_is_mended_to_the_file_the_user_wrote() -> None:
    """The model wrote '/work/zmumu.lhe.gz' for the user's '/data/samples/zmumu.lhe': the one written file of that
    name wins; another file, or a name two written paths share, stays as the model wrote it."""
    from physagent.agent.arguments import mend_paths

    request = _user("Shower /data/samples/zmumu.lhe with Pythia and save it as out/zmumu.hepmc")
    assert mend_paths({"lhe_path": "/work/zmumu.lhe.gz"}, request) == {"lhe_path": "/data/samples/zmumu.lhe"}
    assert mend_paths({"path": "/work/zmumu.hepmc"}, request) == {"path": "out/zmumu.hepmc"}
    assert mend_paths({"lhe_path": "/work/ttbar.lhe"}, request) == {"lhe_path": "/work/ttbar.lhe"}
    two = _user("compare /a/x.lhe with /b/x.lhe")
    assert mend_paths({"lhe_path": "/c/x.lhe"}, two) == {"lhe_path": "/c/x.lhe"}


def test_a_request_with_two_windows_of_one_quantity_fills_neither_bound() -> None:
    """'one sample with pT-hat between 50 and 100 GeV, one above 100 GeV': each window is one step's, so the
    model's bounds stand (filling max=100 into the second slice made the tool refuse it); one window still fills."""
    from physagent.agent.arguments import fill_stated_arguments

    request = _user("Make two QCD samples of 300 events: one with pT-hat between 50 and 100 GeV, one with pT-hat "
                    "above 100 GeV.")
    second = {"process": "qcd_dijet", "n_events": 300, "pt_hat_min_gev": 100}
    assert fill_stated_arguments(second, PARAMETERS, request) == second
    first = {"process": "qcd_dijet", "n_events": 300, "pt_hat_min_gev": 50, "pt_hat_max_gev": 100}
    assert fill_stated_arguments(first, PARAMETERS, request) == first
    one = fill_stated_arguments({"process": "qcd_dijet"}, PARAMETERS, _user("QCD dijets with pT-hat above 400 GeV"))
    assert one["pt_hat_min_gev"] == 400


def test_an_inverse_picobarn_is_a_luminosity_not_a_cross_section() -> None:
    """'2.5 pb' sets histogram's cross_section_pb; '300 pb^-1' (or pb⁻¹) is a luminosity and does not."""
    from physagent.agent.arguments import fill_stated_arguments

    histogram = registry.get("histogram").parameters_schema()
    base = {"source": "ev-0123456789", "field": "m_hat_gev"}
    assert fill_stated_arguments(base, histogram, _user("σ = 2.5 pb, for 10 fb^-1"))["cross_section_pb"] == 2.5
    for luminosity in ("300 pb^-1", "300 pb-1", "300 pb⁻¹"):
        assert "cross_section_pb" not in fill_stated_arguments(base, histogram, _user(f"weighted to {luminosity}"))


def test_a_number_next_to_a_name_physicists_use_fills_the_parameter() -> None:
    """'S/B = 0.03', '5000 QCD dijet events', '800 W′ … events' fill make_anomaly_dataset's s_over_b and event
    counts (x-names); 'S/B of 0.5%' is 0.005; a percentage next to 'QCD' is no event count."""
    from physagent.agent.arguments import fill_stated_arguments

    dataset = registry.get("make_anomaly_dataset").parameters_schema()
    filled = fill_stated_arguments({"n_signal_events": 800}, dataset, _user(
        "Generate 5000 QCD dijet events as background and 800 W' to XY signal events, inject the signal at "
        "S/B = 0.03 with seed 4"))
    assert (filled["n_background_events"], filled["n_signal_events"], filled["s_over_b"], filled["seed"]) == \
        (5000, 800, 0.03, 4)
    percent = fill_stated_arguments({}, dataset, _user("inject a 3.5 TeV W' at 0.5% into QCD dijets, S/B of 0.5%"))
    assert percent == {"s_over_b": 0.005}


def test_an_empty_list_for_a_parameter_that_defaults_to_none_is_dropped() -> None:
    """make_monitoring_data(noise_burst_runs=[]) would switch the fault off; a model writes [] as filler."""
    from physagent.agent.arguments import drop_defaults

    schema = registry.get("make_monitoring_data").parameters_schema()
    assert drop_defaults({"n_runs": 50, "noise_burst_runs": [], "gain_drift_runs": [12, 13]}, schema) == \
        {"n_runs": 50, "gain_drift_runs": [12, 13]}
    assert drop_defaults({"noise_burst_runs": []}, schema, "60 runs with no noise bursts") == {"noise_burst_runs": []}


def test_names_the_user_never_wrote_are_dropped_from_optional_lists(workspace: Workspace) -> None:
    """A small model's histograms=['occupancy', 'energy'] for a request naming neither runs without them; a name
    the user wrote stays ('hit energies' keeps 'energy'), as do ids, $N references, expressions and the items of
    a parameter marked x-derived."""
    from physagent.agent import Assistant, ScriptedBackend
    from physagent.agent.arguments import clean_arguments
    from physagent.agent.backends.scripted import plan

    steps = [{"tool": "make_monitoring_data", "arguments": {"n_runs": 30, "seed": 1}},
             {"tool": "monitor_histograms", "arguments": {"data": "$1.data", "histograms": ["occupancy", "energy"]}}]
    backend = ScriptedBackend([plan(steps, "Flagged {$2.n_flagged} runs.")])
    record = Assistant(backend=backend, workspace=workspace, examples_per_request=0, hygiene=True).ask(
        "Simulate 30 runs of detector monitoring data with seed 1 and flag the bad runs")
    assert "histograms" not in record.tool_calls[1]["arguments"] and record.tool_calls[1]["ok"]

    monitor = registry.get("monitor_histograms").parameters_schema()
    kept = clean_arguments({"data": "$1.data", "histograms": ["occupancy", "energy"]}, monitor,
                           _user("watch the hit energies of 30 runs"))
    assert kept["histograms"] == ["energy"]
    names = {"properties": {"names": {"type": "array", "items": {"type": "string"}},
                            "columns": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                                        "x-derived": True}}}
    assert clean_arguments({"names": ["$1.jets", "jet-0123456789", "jets.pt[0]", "tau21_j1", "mj1"],
                            "columns": ["gain"]}, names, _user("cluster jets and use tau21")) == {
        "names": ["$1.jets", "jet-0123456789", "jets.pt[0]", "tau21_j1"], "columns": ["gain"]}


def test_windows_written_for_as_many_samples_as_steps_go_one_to_each_step_in_order() -> None:
    """Two generate_events steps and 'one with pT-hat between 50 and 100 GeV, one above 100 GeV': step 1 gets
    50–100, step 2 p̂T > 100 with no upper cut (the model had left both out, or copied one into the other); with
    one step, or a window count that differs from the step count, nothing is given out."""
    from physagent.agent.arguments import fill_stated_arguments, spread_windows

    request = _user("Two QCD samples of 300 events: one with pT-hat between 50 and 100 GeV, one with pT-hat above "
                    "100 GeV; histogram pT-hat from 0 to 500 GeV.")  # the histogram's axis is no third window
    model = [{"process": "qcd_dijet"}, {"process": "qcd_dijet", "pt_hat_min_gev": 100, "pt_hat_max_gev": 100}]
    assert spread_windows(model, PARAMETERS, request) == [
        {"process": "qcd_dijet", "pt_hat_min_gev": 50, "pt_hat_max_gev": 100},
        {"process": "qcd_dijet", "pt_hat_min_gev": 100}]
    assert spread_windows(model[:1], PARAMETERS, request) == model[:1]
    histogram = registry.get("histogram").parameters_schema()
    axis = fill_stated_arguments({"source": "$3", "field": "pt_hat_gev"}, histogram, request)
    assert (axis["range_min"], axis["range_max"]) == (0, 500)
    three = [{"process": "qcd_dijet"}] * 3
    assert spread_windows(three, PARAMETERS, request) == three


def test_a_file_path_the_user_never_wrote_is_dropped() -> None:
    """A model's 'path/to/lhe_file.lhe' for a Pythia process is no file anyone has: dropped before the call; the
    user's own file, also moved by the model to another folder, stays."""
    from physagent.agent.arguments import clean_arguments

    invented = clean_arguments({"process": "qcd_dijet", "lhe_path": "path/to/lhe_file.lhe"}, PARAMETERS,
                               _user("Make 200 QCD dijet events"))
    assert invented == {"process": "qcd_dijet", "n_events": 200}
    own = clean_arguments({"process": "lhe", "lhe_path": "/work/z.lhe"}, PARAMETERS,
                          _user("Shower /data/mg5/z.lhe with Pythia"))
    assert own == {"process": "lhe", "lhe_path": "/data/mg5/z.lhe"}


def test_a_small_sample_asked_in_words_is_small() -> None:
    """'use a small sample' with no number: the model's smaller count is kept (hygiene would drop it as unstated
    and run the default 10,000 events); with no count from the model, a tenth of the default; a stated number
    still wins, and without such words the unstated count goes."""
    from physagent.agent.arguments import clean_arguments

    model = {"process": "drell_yan_mumu", "n_events": 100}
    assert clean_arguments(model, PARAMETERS, _user("Z to mumu cross-section, use a small sample"))["n_events"] == 100
    assert clean_arguments({"process": "drell_yan_mumu"}, PARAMETERS,
                           _user("a quick test run of Drell-Yan"))["n_events"] == 1000
    assert clean_arguments(model, PARAMETERS, _user("a small sample of 500 Drell-Yan events"))["n_events"] == 500
    assert "n_events" not in clean_arguments(model, PARAMETERS, _user("the Drell-Yan cross-section at 13 TeV"))
    jets = registry.get("make_jet_dataset").parameters_schema()
    assert clean_arguments({}, jets, _user("a tiny top vs QCD dataset"))["n_jets_per_class"] == 1000


def test_the_soft_drop_mass_only_when_soft_drop_is_asked_for() -> None:
    """'histogram the leading-jet mass' with the model's jets.msd histograms jets.mass; 'soft-drop mass' keeps msd."""
    from physagent.agent.arguments import clean_arguments

    histogram = registry.get("histogram").parameters_schema()
    chosen = {"source": "jet-0123456789", "field": "jets.msd", "object_index": 0}
    assert clean_arguments(chosen, histogram, _user("histogram the leading-jet mass"))["field"] == "jets.mass"
    assert clean_arguments(chosen, histogram, _user("histogram the leading-jet soft-drop mass"))["field"] == "jets.msd"


def test_a_log_scale_in_words_sets_log_y_on_a_plot_step() -> None:
    """'plot … on a log scale': log_y is filled also where the model (or the loop adding the step) left it out."""
    from physagent.agent.arguments import fill_stated_arguments

    plot = registry.get("plot").parameters_schema()
    step = {"histograms": ["$3.histogram"]}
    assert fill_stated_arguments(step, plot, _user("plot the leading-jet pT on a log scale"))["log_y"] is True
    assert "log_y" not in fill_stated_arguments(step, plot, _user("plot the leading-jet pT"))


def test_a_number_that_states_another_parameter_is_not_borrowed() -> None:
    """'pT-hat above 400 GeV' gives pt_hat_min_gev=400; the model's m_wprime_gev=400 for a tt̄ sample goes (the 400
    is written once); 'a 3.5 TeV W prime' is a mass, not √s."""
    from physagent.agent.arguments import clean_arguments

    request = "200 all-hadronic ttbar events with pT-hat above 400 GeV (no MPI)"
    kept = clean_arguments({"process": "ttbar", "m_wprime_gev": 400, "mpi": False}, PARAMETERS, _user(request))
    assert kept["pt_hat_min_gev"] == 400 and "m_wprime_gev" not in kept
    wprime = clean_arguments({"process": "wprime_to_xy", "m_wprime_gev": 3500}, PARAMETERS,
                             _user("a 3.5 TeV W prime, 300 events"))
    assert wprime["m_wprime_gev"] == 3500 and "sqrt_s_tev" not in wprime


def test_a_rejected_name_is_mended_to_the_listed_name_sharing_its_words() -> None:
    """summarize refused 'stats.tau32.median'; of the listed names the request's words fit (jets.pt, jets.tau3,
    jets.tau32 …) the one sharing 'tau32' with the model's name is taken; with no such tie-breaker, none."""
    from physagent.agent.arguments import name_from_offer

    error = ("summarize: fields='stats.tau32.median' is not a numeric field of jet-58ea43360d. Available: event, "
             "weight, jets.pt, jets.eta, jets.mass, jets.tau3, jets.tau32, jets.msd.")
    messages = _user("cluster R = 1.0 jets above 300 GeV with pT-hat above 400 GeV and give me the median tau32 of "
                     "the leading jet")
    assert name_from_offer(error, messages, "stats.tau32.median") == "jets.tau32"
    assert name_from_offer(error, messages) is None


def test_a_phrase_stated_index_is_not_taken_for_a_borrowed_number() -> None:
    """'histogram the leading-jet mass from 0 to 300 GeV': the 0 of the range does not make the leading jet's
    object_index=0 a borrowed number — 'leading' states it."""
    from physagent.agent.arguments import clean_arguments

    histogram = registry.get("histogram").parameters_schema()
    request = _user("cluster R = 1.0 jets above 300 GeV, histogram the leading-jet mass from 0 to 300 GeV in 30 bins")
    for model in ({"source": "$2", "field": "jets.mass", "object_index": 0}, {"source": "$2", "field": "jets.mass"}):
        cleaned = clean_arguments(model, histogram, request)
        assert (cleaned["object_index"], cleaned["range_min"], cleaned["range_max"]) == (0, 0, 300)


def test_a_sign_written_as_a_word_goes_to_the_tool() -> None:
    """'minus 20 events' is the user's -20 and '200 million' 2·10⁸ (the tool refuses both), not 20 or 200 events
    quietly generated."""
    from physagent.agent.arguments import clean_arguments

    request = _user("Please simulate minus 20 Drell-Yan events for me, MPI off.")
    cleaned = clean_arguments({"process": "drell_yan_mumu", "n_events": 20, "mpi": False}, PARAMETERS, request)
    assert cleaned["n_events"] == -20
    assert clean_arguments({"process": "drell_yan_mumu", "n_events": 20}, PARAMETERS,
                           _user("simulate 20 Drell-Yan events"))["n_events"] == 20
    jets = registry.get("cluster_jets").parameters_schema()
    zero = _user("Cluster ev-0123456789 into jets with a radius parameter of exactly zero.")
    assert clean_arguments({"events": "ev-0123456789"}, jets, zero)["radius"] == 0
    huge = _user("I need 200 million top-antitop events by tonight, without MPI.")
    cleaned = clean_arguments({"process": "ttbar", "n_events": 200, "mpi": False}, PARAMETERS, huge)
    assert cleaned["n_events"] == 2 * 10**8


def test_entries_counted_inclusively_become_an_exclusive_stop() -> None:
    """'load only entries 100 to 199' → entry_start=100, entry_stop=200; 'the first 50 events' → 0 and 50."""
    from physagent.agent.arguments import fill_stated_arguments

    reader = registry.get("read_root").parameters_schema()
    window = fill_stated_arguments({"path": "/d/a.root"}, reader, _user("From /d/a.root load only entries 100 to 199"))
    assert (window["entry_start"], window["entry_stop"]) == (100, 200)
    first = fill_stated_arguments({"path": "/d/a.root"}, reader, _user("read the first 50 events of /d/a.root"))
    assert first["entry_stop"] == 50 and first.get("entry_start", 0) == 0


def test_small_counts_written_as_words_are_numbers() -> None:
    """'for a single epoch' → epochs=1, 'two epochs' → 2; 'the one with MPI off' is no count."""
    from physagent.agent.arguments import _numbers_as_digits, fill_stated_arguments

    tagger = registry.get("train_tagger").parameters_schema()
    single = fill_stated_arguments({"dataset": "datas-0123456789", "model": "particlenet"}, tagger,
                                   _user("Train a tiny ParticleNet on it for a single epoch."))
    assert single["epochs"] == 1
    assert fill_stated_arguments({"dataset": "datas-0123456789"}, tagger, _user("train it for two epochs"))[
        "epochs"] == 2
    assert _numbers_as_digits("the one with MPI off, and one of them") == "the one with MPI off, and one of them"


def test_a_phrase_fills_a_parameter_only_beside_the_one_it_needs() -> None:
    """'how many events have a leading muon above 40 GeV': summarize with a selection and no fields gets no
    object_index (the tool would refuse it); with fields, 'leading' still sets it."""
    from physagent.agent.arguments import fill_stated_arguments

    summary = registry.get("summarize").parameters_schema()
    request = _user("Out of those, how many events have a leading muon harder than 40 GeV?")
    counted = {"source": "ev-0123456789", "selection": "muons.pt[0] > 40"}
    assert fill_stated_arguments(counted, summary, request) == counted
    fields = {"source": "ev-0123456789", "fields": ["muons.pt"]}
    assert fill_stated_arguments(fields, summary, _user("the mean leading muon pT"))["object_index"] == 0


def test_the_example_a_tool_error_gives_is_taken_when_the_request_names_its_quantities() -> None:
    """train_generator refuses empty features on jets, naming ['jets.mass[0]', 'jets.tau21[0]'] as an example: a
    request about "the leading-jet mass and tau21" gets that list; one about the jet pT does not."""
    from physagent.agent.arguments import example_from_error

    error = ("train_generator: features=[] is empty, and jet-bc3fabb622 is a jets artifact without plain columns. "
             "Name one number per row each, e.g. ['jets.mass[0]', 'jets.tau21[0]'].")
    asked = _user("Learn the joint distribution of the leading-jet mass and tau21 in jet-bc3fabb622 with a flow")
    assert example_from_error(error, asked) == ["jets.mass[0]", "jets.tau21[0]"]
    assert example_from_error(error, _user("learn the leading-jet pT and mass with a flow")) is None
    assert example_from_error("features=[] is empty; name them.", asked) is None

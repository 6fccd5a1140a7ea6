"""The chat web UI in a real headless Chromium, and the tool forms it generates from the registry."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from physagent.agent.events import AnswerEvent, ArtifactEvent, ToolCallEvent, ToolResultEvent
from physagent.app.web import LATEX_DELIMITERS, _ChatView, _field, _form_arguments, launch_ui
from physagent.tools import ProgressUpdate, registry

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ANSWER = "Generated 200 Drell-Yan events and plotted the mass."
MATH = r"The ratio $\tau_{21}$ is for jets, not muons."  # the chat renders it with KaTeX


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def ui(tmp_path: Path, plot_pipeline_script: Callable[[str], Path]) -> Iterator[str]:
    """The UI on 127.0.0.1 with a scripted model (generate → histogram → plot → answer); stopped afterwards."""
    script = plot_pipeline_script(f"{ANSWER} {MATH}")
    port = _free_port()
    demo = launch_ui(tmp_path / "home", port=port, backend=f"scripted:{script}", block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """Headless Debian Chromium with no route to any host but 127.0.0.1 (the page must not need the internet)."""
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:  # the page as the test left it, to diagnose a failure
        (REPO / "test-artifacts").mkdir(exist_ok=True)
        driver.save_screenshot(str(REPO / "test-artifacts" / "ui-last.png"))
        (REPO / "test-artifacts" / "ui-last.txt").write_text(driver.find_element(By.TAG_NAME, "body").text)
        driver.quit()


def _text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def _wait(driver: WebDriver, condition: Any, seconds: float = 90) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(condition)


def _pick(driver: WebDriver, dropdown_id: str, option: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#{dropdown_id} input").click()
    choice = _wait(driver, lambda d: [li for li in d.find_elements(By.CSS_SELECTOR, f"#{dropdown_id} li")
                                      if li.text == option], 10)
    choice[0].click()


def _screenshot(driver: WebDriver, tmp_path: Path) -> None:
    """Keep a screenshot as a test artifact: in pytest's tmp dir and at test-artifacts/ui.png (git-ignored)."""
    driver.save_screenshot(str(tmp_path / "ui.png"))
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    driver.save_screenshot(str(REPO / "test-artifacts" / "ui.png"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # raised inside gradio's queue, not by us
def test_chat_streams_steps_and_plot_uploads_and_downloads_in_a_real_browser(
    ui: str, browser: WebDriver, tmp_path: Path
) -> None:
    """Load the page offline, ask (scripted model), see tool steps and the plot, upload in a second tab
    (a separate session), download the plot from the first."""
    browser.get(ui)
    request = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#request textarea"), 30)
    assert browser.title == "physagent"
    request.send_keys("Generate 200 Drell-Yan events and plot the dimuon mass" + Keys.ENTER)
    _wait(browser, lambda d: "Tool: generate_events" in _text(d, "chat"))  # the step shows while it runs
    _wait(browser, lambda d: ANSWER in _text(d, "chat"))
    chat = _text(browser, "chat")
    assert chat.index("Tool: generate_events") < chat.index("Tool: histogram") < chat.index("Tool: plot") \
        < chat.index(ANSWER)
    # read in one script: the chat re-renders while streaming, which makes held element references stale
    math = _wait(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#chat .katex')].map(e => e.textContent).filter(t => t.trim())"), 10)
    assert "τ" in math[0] and "$" not in chat.split(ANSWER)[1]  # rendered, not shown as source
    plot = browser.find_element(By.CSS_SELECTOR, "#chat img[src*='plot.png']")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) > 200
    plot_id = _wait(browser, lambda d: next((w for w in _text(d, "artifacts").split() if w.startswith("plot-")), None))
    _screenshot(browser, tmp_path)
    browser.find_element(By.XPATH, "//*[@id='chat']//*[contains(text(), 'Tool: generate_events')]").click()
    _wait(browser, lambda d: '"n_events": 200' in _text(d, "chat"), 10)  # the step opens: its arguments
    assert "sigma_pb" in _text(browser, "chat")  # and the result's values
    origins = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert origins and all(url.startswith((ui, "data:", "blob:")) for url in origins), origins

    first = browser.current_window_handle
    browser.switch_to.new_window("tab")  # another browser session: its own workspace
    browser.get(ui)
    upload = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"), 30)
    csv = tmp_path / "muons.csv"
    csv.write_text("pt_gev,eta\n" + "".join(f"{10 + i},{0.1 * i:.1f}\n" for i in range(25)))
    upload.send_keys(str(csv))
    _wait(browser, lambda d: "imported as tab-" in _text(d, "upload-status"))
    _wait(browser, lambda d: "tab-" in _text(d, "artifacts"), 10)
    assert plot_id not in _text(browser, "artifacts") and "ev-" not in _text(browser, "artifacts")
    _run_tool_from_its_form(browser)

    browser.switch_to.window(first)
    assert "tab-" not in _text(browser, "artifacts")
    _pick(browser, "artifact-file", f"{plot_id}/plot.png")
    _wait(browser, lambda d: "Download plot.png" in _text(d, "download"), 20)
    browser.find_element(By.ID, "download").click()
    downloads = tmp_path / "downloads"
    # Chromium writes <name>.crdownload and renames it when the download is complete
    saved = _wait(browser, lambda d: list(downloads.glob("*.png")) if downloads.is_dir() else None, 20)
    assert saved[0].read_bytes().startswith(b"\x89PNG")
    browser.find_element(By.ID, "export").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#export-file a[download='reproduce.py']"), 20)


def _run_tool_from_its_form(browser: WebDriver) -> None:
    """In the Tools tab, fill generate_events' generated form and run it without the model."""
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Tools')]").click()
    n_events = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#tool-field-n_events input"), 20)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", n_events)
    n_events.send_keys(Keys.CONTROL, "a")
    n_events.send_keys("20")
    _pick(browser, "tool-field-process", "drell_yan_mumu")
    browser.find_element(By.CSS_SELECTOR, "#tool-field-mpi input[type=checkbox]").click()  # MPI off: faster
    browser.find_element(By.ID, "run-tool").click()
    _wait(browser, lambda d: "generate_events finished" in _text(d, "tool-status"), 60)
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Chat')]").click()
    # the form's values reached the tool: 20 Drell-Yan events with MPI off, in this tab's session
    _wait(browser, lambda d: "20 drell_yan_mumu events" in _text(d, "artifacts"), 10)
    assert "(MPI off)" in _text(browser, "artifacts")


def test_every_tool_gets_a_form_that_leaves_defaults_alone() -> None:
    """The Tools tab's form for each registered tool, left untouched, sends exactly the tool's defaults
    (an optional number left empty is left out, never sent as 0) and nothing for required parameters."""
    for spec in registry:
        schema = spec.parameters_schema()
        required = set(schema.get("required", []))
        fields = {name: _field(name, prop, name in required, schema.get("$defs", {}))
                  for name, prop in schema.get("properties", {}).items()}
        arguments = _form_arguments(fields, {field.component: field.component.value for field in fields.values()})
        for name, info in spec.input_model.model_fields.items():
            if name in required or info.default is None:
                assert name not in arguments, (spec.name, name, arguments.get(name))
                continue
            validated = spec.input_model.__pydantic_validator__.validate_assignment(
                spec.input_model.model_construct(), name, arguments[name])
            assert getattr(validated, name) == info.default, (spec.name, name, arguments[name])


def test_a_running_tool_step_shows_live_progress_then_its_result(tmp_path: Path) -> None:
    """The chat turns events into a pending step whose log follows the tool's progress, then a closed step
    with the result's values, the plot as an image, and the answer."""
    messages: list[Any] = []
    view = _ChatView(messages)
    step = {"session": "s-0123456789", "step": 1}
    view.add(ToolCallEvent(**step, tool="generate_events", arguments={"process": "ttbar", "n_events": 5000}))
    assert messages[0].metadata == {"title": "Tool: generate_events", "status": "pending"}
    view.add(ProgressUpdate("generate_events", "Pythia8 ttbar", 1200, 5000, "events"))
    assert messages[0].metadata["log"] == "Pythia8 ttbar: 1200/5000 events"
    assert messages[0].metadata["status"] == "pending"
    view.add(ToolResultEvent(**step, tool="generate_events", ok=True, summary="generate_events OK.",
                             result={"n_events": 5000, "sigma_pb": 512.3456789, "events": {"id": "ev-0123456789"}}))
    assert messages[0].metadata["status"] == "done" and "| sigma_pb | 512.346 |" in messages[0].content
    assert '"n_events": 5000' in messages[0].content and "ev-0123456789" not in messages[0].content
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    view.add(ArtifactEvent(**step, id="plot-0123456789", kind="plot", path=str(png), summary="a plot"))
    view.add(AnswerEvent(**step, text="sigma = 512 pb"))
    assert [type(m.content).__name__ for m in messages[1:]] == ["Image", "str"]
    assert messages[2].content == "sigma = 512 pb"


def test_retrieved_passages_show_as_quotes_with_their_latex_verbatim() -> None:
    """A search step lists each passage under its citation, its LaTeX as written (KaTeX renders it in the chat)."""
    messages: list[Any] = []
    view = _ChatView(messages)
    step = {"session": "s-0123456789", "step": 1}
    passage = r"The decay $\tau \rightarrow \mu\mu\mu$ violates lepton flavour."
    view.add(ToolCallEvent(**step, tool="search_knowledge", arguments={"query": "tau to three muons"}))
    view.add(ToolResultEvent(**step, tool="search_knowledge", ok=True, summary="search_knowledge OK.", result={
        "query": "tau to three muons", "hits": [{"text": passage, "citation": "[lfv.md: LFV]"}]}))
    assert f"[lfv.md: LFV]\n> {passage}" in messages[0].content
    assert {"left": "$", "right": "$", "display": False} in LATEX_DELIMITERS

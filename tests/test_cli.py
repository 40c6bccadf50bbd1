"""User mistakes on the command line: one line "error: ...", exit status 2, a traceback only with
--debug or TRASHPOLE_DEBUG=1; bugs keep their traceback. Every tool is run through
trashpole.cli.run_tool, as its __main__ does."""

import contextlib
import importlib.util
import io
import os
import subprocess
import sys

import pytest
from conftest import write_tiny_export
from tiny_model import REPO, write_tiny_config
from torch.multiprocessing import ProcessExitedException

from trashpole.cli import DEBUG_ENV, add_checkout_to_path, error_line, run_tool, run_worker
from trashpole.errors import MissingFileError, UserError


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the tools register data sets ("trashpole_train", ...); later tests expect a clean catalog
pytestmark = pytest.mark.usefixtures("clean_catalogs")


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _raise(error):
    def main(argv):
        raise error

    return main


def _run(main, argv, fn=run_tool):
    """(exit status, stderr) of ``fn(main, argv)``; stderr goes to a buffer of our own, since
    detectron2's setup_logger keeps the sys.stdout it finds and pytest's capsys would close it."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        try:
            status = fn(main, argv)
        except SystemExit as e:
            status = e.code
    return status, buffer.getvalue()


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ")
    return err.strip()


def test_a_user_error_is_one_line_and_status_2():
    message = "data/x.json: image 3 is missing\n  put it beside the JSON"
    status, err = _run(_raise(UserError(message)), [])
    assert status == 2
    assert _one_line(err) == "error: data/x.json: image 3 is missing; put it beside the JSON"


def test_a_tool_puts_its_checkout_on_the_path_once(monkeypatch):
    monkeypatch.setattr(sys, "path", ["/elsewhere"])
    tool = str(REPO / "tools" / "benchmark.py")
    assert add_checkout_to_path(tool) == str(REPO)
    assert add_checkout_to_path(tool) == str(REPO)
    assert sys.path == [str(REPO), "/elsewhere"]


def test_error_line_collapses_whitespace():
    assert error_line(MissingFileError("a  b\n\n c ")) == "error: a b; c"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, how):
    argv = ["--debug"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(UserError, match="wrong"):
        run_tool(_raise(UserError("wrong")), argv)


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_tool(_raise(ZeroDivisionError("a bug")), [])


def test_a_worker_reports_and_exits_2():
    status, err = _run(_raise(UserError("bad root")), [], fn=run_worker)
    assert status == 2 and _one_line(err) == "error: bad root"
    assert run_worker(lambda a, b: a + b, 2, 3) == 5


def test_a_spawned_worker_that_exited_2_is_not_reported_twice():
    exited = ProcessExitedException("process 0 terminated with exit code 2", 0, 123, 2)
    assert _run(_raise(exited), []) == (2, "")
    crashed = ProcessExitedException("process 0 terminated with exit code 1", 0, 123, 1)
    with pytest.raises(ProcessExitedException):
        run_tool(_raise(crashed), [])


@pytest.fixture
def config(tmp_path):
    return write_tiny_config(tmp_path)


def _train_net(argv) -> str:
    """Run tools/train_net.py in this process; returns its error line."""
    status, err = _run(_tool("train_net").cli, argv)
    assert status == 2
    return _one_line(err)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing root", "nonexistent: dataset root not found; pass the folder of the Roboflow"),
        ("empty root", "no split folder (train/, valid/ or val/, test/) found"),
        ("missing config", "nope.yaml' does not exist; give a recipe from configs/"),
        ("unknown key", "unknown config key SOLVER.BASE_LRR (did you mean SOLVER.BASE_LR?)"),
        ("unknown optimizer", "unknown SOLVER.OPTIMIZER 'Adamax'; choose one of"),
        ("missing weights", "MODEL.WEIGHTS '/nope/model_final.pth' does not exist"),
    ],
)
def test_train_net_user_mistakes(tmp_path, config, case, expected):
    root = write_tiny_export(tmp_path / "export", splits=("train",))
    (tmp_path / "empty").mkdir()
    args = {
        "missing root": ["--dataset-root", str(tmp_path / "nonexistent")],
        "empty root": ["--dataset-root", str(tmp_path / "empty")],
        "missing config": [
            "--dataset-root",
            str(root),
            "--config-file",
            str(tmp_path / "nope.yaml"),
        ],
        "unknown key": ["--dataset-root", str(root), "SOLVER.BASE_LRR", "0.1"],
        "unknown optimizer": ["--dataset-root", str(root), "SOLVER.OPTIMIZER", "Adamax"],
        "missing weights": ["--dataset-root", str(root), "MODEL.WEIGHTS", "/nope/model_final.pth"],
    }[case]
    if "--config-file" not in args:
        args = ["--config-file", config] + args
    line = _train_net(args + ["OUTPUT_DIR", str(tmp_path / "out")])
    assert expected in line


def test_predict_without_a_run(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    argv = ["--run", str(tmp_path), "--input", str(tmp_path), "--output", str(tmp_path / "o")]
    status, err = _run(_tool("predict").main, argv)
    assert status == 2 and _one_line(err) == (
        f"error: {tmp_path}/config.yaml does not exist: give a run folder (the OUTPUT_DIR of a "
        "training, holding config.yaml) or its config.yaml"
    )


def test_predict_with_an_unreadable_input(tmp_path):
    argv = ["--run", str(tmp_path), "--input", str(tmp_path / "*.png"), "--output", "o"]
    status, err = _run(_tool("predict").main, argv)
    assert status == 2 and "no image (.jpg" in _one_line(err)


@pytest.mark.parametrize(
    "tool, argv, expected",
    [
        ("export_model", ["--run", "{tmp}/run", "--format", "onnx", "--output", "{tmp}/o"],
         "{tmp}/run does not exist: give a run folder"),
        ("export_model", ["--run", "{tmp}/run", "--format", "openvino", "--output", "{tmp}/o",
                          "--sample-image", "{tmp}/none.jpg"],
         "--sample-image {tmp}/none.jpg: no such file"),
        ("export_model", ["--run", "{tmp}/run", "--format", "openvino", "--output", "{tmp}/o",
                          "--sample-image", "{tmp}/empty.jpg"],
         "--sample-image {tmp}/empty.jpg: empty file (0 bytes); give a JPEG or PNG"),
        ("visualize_data", ["--dataset-root", "{tmp}/nope", "--output", "{tmp}/o"],
         "{tmp}/nope: dataset root not found"),
        ("benchmark", ["accuracy", "--run", "{tmp}/run", "--output", "{tmp}/o"],
         "{tmp}/run does not exist: give a run folder"),
        ("compare_runs", ["{tmp}"], "{tmp}/eval/valid/metrics.json does not exist; evaluate the valid split"),
        ("show_results", ["{tmp}/run"], "run folder '{tmp}/run' does not exist"),
    ],
)  # fmt: skip
def test_other_tools_report_a_missing_input(tmp_path, tool, argv, expected):
    (tmp_path / "empty.jpg").write_bytes(b"")
    argv = [a.format(tmp=tmp_path) for a in argv]
    status, err = _run(_tool(tool).main if tool != "visualize_data" else _visualize, argv)
    assert status == 2 and expected.format(tmp=tmp_path) in _one_line(err)


def _visualize(argv):
    tool = _tool("visualize_data")
    return tool.main(tool.parse_args(argv))


def test_visualize_data_names_the_missing_split(tmp_path):
    root = write_tiny_export(tmp_path / "export", splits=("train",))
    argv = ["--dataset-root", str(root), "--split", "test", "--output", str(tmp_path / "o")]
    status, err = _run(_visualize, argv)
    assert status == 2 and "no test split; choose --split from ['train']" in _one_line(err)


def test_the_scripts_exit_2_with_one_line(tmp_path):
    """The two cases of the issue, as a user runs them: no traceback, one line, status 2."""
    env = {k: v for k, v in os.environ.items() if k != DEBUG_ENV}
    (tmp_path / "a.jpg").write_bytes(b"")
    commands = [
        ["tools/train_net.py", "--config-file", write_tiny_config(tmp_path),
         "--dataset-root", "/nonexistent", "OUTPUT_DIR", str(tmp_path / "out")],
        ["tools/predict.py", "--run", str(tmp_path), "--input", str(tmp_path / "a.jpg"),
         "--output", str(tmp_path / "pred")],
    ]  # fmt: skip
    for command in commands:
        done = subprocess.run(
            [sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stdout + done.stderr

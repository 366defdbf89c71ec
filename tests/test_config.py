"""Configuration precedence: defaults < ralph.toml or [tool.ralph] < command-line flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from ralph_tui.config import DEFAULT_GATES, load_config
from ralph_tui.errors import UsageError


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert (config.role, config.agent, config.max_iterations) == ("backend", "anthropic", 10)
    assert config.gates == DEFAULT_GATES and config.gate_options.timeout_s == 600


def test_tool_ralph_in_pyproject_and_flags_override_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.ralph]\nrole = "api"\nmax_iterations = 4\n'
        '[tool.ralph.gates]\ntests = "pytest -x"\n'
    )
    config = load_config(tmp_path)
    assert (config.role, config.max_iterations, config.gates) == ("api", 4, {"tests": "pytest -x"})
    flagged = load_config(tmp_path, {"max_iterations": 2, "role": None, "model": "claude-x"})
    assert (flagged.role, flagged.max_iterations, flagged.model) == ("api", 2, "claude-x")


def test_ralph_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ralph]\nrole = "from-pyproject"\n')
    (tmp_path / "ralph.toml").write_text('role = "from-ralph-toml"\n')
    assert load_config(tmp_path).role == "from-ralph-toml"


def test_bad_flag_is_reported_as_command_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^command line: max_iterations: "):
        load_config(tmp_path, {"max_iterations": 0})


def test_nested_bad_value_names_the_dotted_key(tmp_path: Path) -> None:
    (tmp_path / "ralph.toml").write_text("[gate_options]\ntimeout_s = -1\n")
    with pytest.raises(UsageError, match=r"ralph.toml: gate_options.timeout_s: "):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        ('model = ""', "model: '' is not a model id"),
        ('model = "claude sonnet"', "model: 'claude sonnet' is not a model id"),
        ('model = "claude-\\u001b[2J"', "model: 'claude-\\x1b[2J' is not a model id"),
        ('[pm]\nmodel = ""', "pm.model: '' is not a model id"),
        ('fallback = ["anthropic:haiku 4"]', "fallback: 'haiku 4' is not a model id"),
    ],
)
def test_a_model_that_is_not_a_model_id_is_refused_naming_the_key(
    tmp_path: Path, lines: str, said: str
) -> None:
    """It used to run until the first request failed (an empty model: a 400 from the API)."""
    (tmp_path / "ralph.toml").write_text(lines + "\n")
    with pytest.raises(UsageError) as refused:
        load_config(tmp_path)
    assert f"ralph.toml: {said}" in str(refused.value)
    assert "\x1b" not in str(refused.value)


def test_model_ids_people_use_are_accepted(tmp_path: Path) -> None:
    for model in ("claude-sonnet-4-5", "us.anthropic.claude-3-5-sonnet-20241022-v2:0"):
        (tmp_path / "ralph.toml").write_text(
            f'model = "{model}"\nfallback = ["anthropic:{model}"]\n[pm]\nmodel = "{model}"\n'
        )
        config = load_config(tmp_path)
        assert config.model == model and config.pm is not None and config.pm.model == model
    with pytest.raises(UsageError, match=r"^command line: model: "):
        load_config(tmp_path, {"model": ""})


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('tests = ""', "gates.tests: an empty command, which would always pass"),
        ('tests = "pytest"\nlint = "  "', "gates.lint: an empty command, which would always pass"),
        ('"" = "pytest"', "gates: a gate with an empty name"),
    ],
)
def test_a_gate_that_could_not_fail_or_has_no_name_is_refused(
    tmp_path: Path, table: str, said: str
) -> None:
    """A blank command ran as `sh -c ""` and passed: the story landed unchecked."""
    (tmp_path / "ralph.toml").write_text(f"[gates]\n{table}\n")
    with pytest.raises(UsageError) as refused:
        load_config(tmp_path)
    assert f"ralph.toml: {said}" in str(refused.value)

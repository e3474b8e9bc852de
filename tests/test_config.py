"""Settings: production refuses missing or placeholder secrets, and errors never quote a secret; the CI
entry refuses a compose file it cannot validate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from constellate.config import Settings, get_settings, is_placeholder
from constellate.exceptions import ConfigError

REAL = "vT3q9-Xk2LpZ8mWc4RbN"


@pytest.mark.parametrize(
    "env, reason",
    [
        ({}, "CONSTELLATE_API_KEY is not set"),
        ({"CONSTELLATE_API_KEY": "change-me-api-key"}, "CONSTELLATE_API_KEY is a placeholder"),
        ({"CONSTELLATE_API_KEY": "x7Qa9"}, "CONSTELLATE_API_KEY is a placeholder"),
        (
            {"CONSTELLATE_API_KEY": REAL, "CONSTELLATE_QDRANT_URL": "http://q:6333"},
            "CONSTELLATE_QDRANT_API_KEY is not set",
        ),
        (
            {"CONSTELLATE_API_KEY": REAL, "CONSTELLATE_QDRANT_API_KEY": "change-me-qdrant-key"},
            "CONSTELLATE_QDRANT_API_KEY is a placeholder",
        ),
        ({"CONSTELLATE_API_KEY": REAL, "CONSTELLATE_CORS_ORIGINS": '["*"]'}, "may not be '*'"),
    ],
)
def test_production_refuses_weak_secrets(monkeypatch, env, reason) -> None:
    monkeypatch.setenv("CONSTELLATE_ENVIRONMENT", "production")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert reason in str(caught.value)
    for name, value in env.items():
        if name.endswith("_KEY"):
            assert value not in str(caught.value)  # the message names settings, never secrets


def test_production_with_real_secrets_and_development_without(monkeypatch) -> None:
    monkeypatch.setenv("CONSTELLATE_ENVIRONMENT", "production")
    monkeypatch.setenv("CONSTELLATE_API_KEY", REAL)
    assert get_settings().api_key.get_secret_value() == REAL
    assert Settings().environment == "production"
    monkeypatch.setenv("CONSTELLATE_ENVIRONMENT", "development")
    monkeypatch.delenv("CONSTELLATE_API_KEY")
    assert get_settings().api_key is None  # development runs open, as `constellate up` does


def test_bad_values_name_the_setting_not_the_value(monkeypatch) -> None:
    monkeypatch.setenv("CONSTELLATE_MAX_BATCH", "-3")
    with pytest.raises(ConfigError, match="max_batch: Input should be greater than or equal to 1"):
        get_settings()


def test_placeholder_words() -> None:
    assert is_placeholder("change-me-please-now") and is_placeholder("my-secret-is-long-enough")
    assert not is_placeholder(REAL)


CI_RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"


def _run_ci(tmp_path: Path, apt_get: str, docker_compose: str | None) -> subprocess.CompletedProcess:
    """Run .ci/run in a copy of the repo's layout, with stub apt-get / docker-compose / scripts/test on a
    PATH that holds nothing else but the few tools the script uses."""
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    (root / "scripts").mkdir()
    shutil.copy(CI_RUN, root / ".ci" / "run")
    (root / ".env.example").write_text("CONSTELLATE_API_KEY=change-me-api-key\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "mktemp", "tail", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    stubs = {root / "scripts" / "test": 'echo "suite ran"', bin_dir / "apt-get": apt_get}
    if docker_compose is not None:
        stubs[bin_dir / "docker-compose"] = f'echo "$@" > {tmp_path}/compose-args\n{docker_compose}'
    for path, body in stubs.items():
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(
        [shutil.which("bash"), str(root / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "apt_get, docker_compose, reason",
    [
        ('echo "E: Unable to locate package docker-compose" >&2; exit 100', None, "not installed"),
        ("exit 0", None, "not installed"),  # apt-get claims success but nothing is on the PATH
        ("exit 0", 'echo "services.api.ports must be a list" >&2; exit 1', "is not valid"),
    ],
    ids=["install-fails", "still-missing", "invalid-compose"],
)
def test_ci_fails_when_it_cannot_validate_the_compose_file(tmp_path, apt_get, docker_compose, reason) -> None:
    done = _run_ci(tmp_path, apt_get, docker_compose)
    assert done.returncode != 0
    assert "error: docker-compose" in done.stderr and reason in done.stderr, done.stderr
    assert "suite ran" not in done.stdout  # the suite never starts on an unvalidated compose file
    if "Unable to locate" in apt_get:
        assert "Unable to locate package docker-compose" in done.stderr  # apt-get's reason is shown


def test_ci_validates_the_compose_file_then_runs_the_suite(tmp_path) -> None:
    done = _run_ci(tmp_path, "exit 0", "exit 0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["docker-compose.yml: valid", "suite ran"]
    assert (tmp_path / "compose-args").read_text().split() == ["--env-file", ".env.example", "config", "-q"]

"""Settings: production refuses missing or placeholder secrets, and errors never quote a secret."""

from __future__ import annotations

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

"""``notify:`` in the config: targets read with their defaults, event names with - or _, every
mistake named with its key and a suggestion, secrets only from the environment, a variable not set
said at load, and nothing of a URL or a secret in what the ledger records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dispatcher.config import NOTIFY_EVENTS, NotifyTarget, Settings, load_settings
from dispatcher.errors import ConfigError
from tests.support.configs import load_text
from tests.support.files import WriteFile

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
DING = "https://oapi.dingtalk.com/robot/send?access_token=${DING_TOKEN}"


@pytest.fixture(autouse=True)
def _variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DING_TOKEN", "tok-0123456789")
    monkeypatch.setenv("DING_SECRET", "SEC0123456789abcdef")


def error(write_file: WriteFile, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(write_file, text)
    return str(caught.value)


def test_a_target_takes_the_documented_defaults(write_file: WriteFile) -> None:
    settings = load_text(write_file, f"notify:\n  - type: dingtalk\n    url: '{DING}'\n")
    [target] = settings.notify
    assert target == NotifyTarget("dingtalk", DING, key="notify[0]")
    assert target.events == NOTIFY_EVENTS
    assert (target.language, target.timeout_s, target.retries) == ("en", 5.0, 2)


def test_every_key_of_a_target_is_read(write_file: WriteFile) -> None:
    text = (
        "notify:\n"
        f"  - type: dingtalk\n    url: '{DING}'\n    secret: '${{DING_SECRET}}'\n"
        "    events: [run-aborted, canary_verdict, run-aborted]\n"
        "    language: zh\n    timeout: 2s\n    retries: 0\n"
        "  - type: webhook\n    url: http://127.0.0.1:9/hook\n"
    )
    first, second = load_text(write_file, text).notify
    assert first.secret == "${DING_SECRET}"
    assert first.events == ("run_aborted", "canary_verdict")
    assert (first.language, first.timeout_s, first.retries) == ("zh", 2.0, 0)
    assert (second.type, second.key) == ("webhook", "notify[1]")


def test_variables_are_read_when_resolved() -> None:
    target = NotifyTarget("dingtalk", DING, "${DING_SECRET}")
    assert target.resolve({"DING_TOKEN": "a", "DING_SECRET": "b"}) == (
        "https://oapi.dingtalk.com/robot/send?access_token=a",
        "b",
    )


_D = {"type": "dingtalk", "url": DING}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({**_D, "secrt": "x"}, "notify[0].secrt: unknown key (did you mean 'secret'?)"),
        ({**_D, "type": "dingtlk"}, "notify[0].type: unknown 'dingtlk' (did you mean 'dingtalk'?)"),
        ({"url": DING}, "notify[0].type: missing (one of dingtalk, wecom, feishu, webhook)"),
        ({"type": "wecom"}, "notify[0].url: must be text, not None"),
        ({"type": "webhook", "url": "ftp://x/y"}, "notify[0].url: must be an http(s) URL"),
        (
            {**_D, "events": ["run_finishd"]},
            "notify[0].events: unknown 'run_finishd' (did you mean 'run_finished'?)",
        ),
        ({**_D, "events": "run_finished"}, "notify[0].events: must be a list"),
        ({**_D, "language": "chinese"}, "notify[0].language: unknown 'chinese' (known: en, zh)"),
        ({**_D, "timeout": "soon"}, "notify[0].timeout: must be a duration"),
        ({**_D, "timeout": 0}, "notify[0].timeout: must be within 0..60 seconds"),
        ({**_D, "retries": -1}, "notify[0].retries: must be a whole number within 0..10"),
        (
            {**_D, "secret": "SEC123"},
            'notify[0].secret: a secret comes from the environment: write secret: "${NAME}"',
        ),
        (
            {"type": "wecom", "url": DING, "secret": "${DING_SECRET}"},
            "notify[0].secret: a wecom target does not sign: remove secret",
        ),
        (
            {**_D, "url": "https://x/${BAD-NAME}"},
            "notify[0].url: ${BAD-NAME} does not name an environment variable",
        ),
    ],
)
def test_a_wrong_target_is_named_with_its_key(
    write_file: WriteFile, target: dict[str, object], expected: str
) -> None:
    message = error(write_file, yaml.safe_dump({"notify": [target]}))
    assert message.startswith(str(write_file("x", "").parent))  # the file is named first
    assert expected in message
    assert "\n" not in message


def test_notify_must_be_a_list(write_file: WriteFile) -> None:
    assert "notify: must be a list of targets" in error(write_file, "notify:\n  type: wecom\n")


def test_a_variable_not_set_is_said_at_load_with_its_key(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DING_SECRET")
    text = f"notify:\n  - type: dingtalk\n    url: '{DING}'\n    secret: '${{DING_SECRET}}'\n"
    message = error(write_file, text)
    assert message.endswith(
        "notify[0].secret: the environment variable DING_SECRET is not set: export it"
    )


def test_an_unknown_section_lists_every_section_with_the_closest(write_file: WriteFile) -> None:
    message = error(write_file, "notfy: []\n")
    assert message.endswith(
        "unknown section 'notfy' (did you mean 'notify'? sections: ledger, limits, notify,"
        " onenet, products, reliability, retry)"
    )
    assert "did you mean 'products'?" in error(write_file, "product: {}\n")


def test_what_the_ledger_records_holds_no_url_and_no_secret(write_file: WriteFile) -> None:
    text = f"notify:\n  - type: dingtalk\n    url: '{DING}'\n    secret: '${{DING_SECRET}}'\n"
    recorded = load_text(write_file, text).to_dict()
    assert recorded["notify"] == [
        {
            "type": "dingtalk",
            "events": list(NOTIFY_EVENTS),
            "language": "en",
            "timeout_s": 5.0,
            "retries": 2,
        }
    ]
    assert "DING" not in repr(recorded)
    assert Settings().to_dict()["notify"] == []


def test_the_example_configs_notify_block_loads_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("# notify:")
    end = text.index("\n\n", start)
    block = "\n".join(line.removeprefix("# ") for line in text[start:end].splitlines())
    for name in ("DINGTALK_TOKEN", "DINGTALK_SECRET", "WECOM_KEY", "FEISHU_HOOK", "FEISHU_SECRET"):
        monkeypatch.setenv(name, f"{name.lower()}-value")
    path = tmp_path / "c.yaml"
    path.write_text(text[:start] + block + "\n" + text[end:], encoding="utf-8")
    ding, wecom, feishu, hook = load_settings(path).notify
    assert (ding.type, ding.language, ding.timeout_s, ding.retries) == ("dingtalk", "zh", 5.0, 2)
    assert wecom.events == ("run_aborted", "canary_verdict")
    assert feishu.resolve()[1] == "feishu_secret-value"
    assert hook.events == NOTIFY_EVENTS

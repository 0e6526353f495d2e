"""Config mistakes get a message naming the file, the line and the expected form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from probes.cli import config_warnings
from probes.config import ConfigError, load_config, load_config_text
from probes.config.durations import parse_duration
from probes.secrets import Masker

VALID = """
journeys:
  - name: checkout
    base_url: http://shop.test
    steps:
      - name: home
        goto: /
"""


def problems_of(yaml_text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(textwrap.dedent(yaml_text).lstrip(), "shop.yaml", env=env or {})
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: home
                    goto: /
                    clikc: {role: button}
            """,
            "shop.yaml:6: journey \"checkout\", steps[0].clikc: unknown key 'clikc'; "
            "did you mean 'click'? expected one of: name, goto, click,",
            id="unknown-key-with-hint",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                retries: many
                steps:
                  - name: home
                    goto: /
            """,
            'shop.yaml:3: journey "checkout", retries: input should be a valid integer',
            id="wrong-type",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                step_timeout: 3 sec
                steps:
                  - name: home
                    goto: /
            """,
            'shop.yaml:3: journey "checkout", step_timeout: expected a duration like '
            "500ms, 3s, 1m or 1m30s, got '3 sec'",
            id="bad-duration",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                interval: 30
                steps:
                  - name: home
                    goto: /
            """,
            'shop.yaml:3: journey "checkout", interval: expected a duration like '
            "500ms, 3s, 1m or 1m30s, got 30",
            id="duration-without-unit",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps: []
            """,
            'shop.yaml:3: journey "checkout", steps: must not be empty',
            id="empty-steps",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: home
                    goto: /
                  - name: home
                    goto: /cart
            """,
            "shop.yaml:6: journey \"checkout\", steps[1].name: two steps are named 'home'",
            id="duplicate-step",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: home
                    goto: /
              - name: checkout
                steps:
                  - name: home
                    goto: /
            """,
            'shop.yaml:6: journey "checkout": journey name is already used at shop.yaml:2',
            id="duplicate-journey",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                base_url: ${SHOP_URL}
                steps:
                  - name: home
                    goto: /
            """,
            'shop.yaml:3: journey "checkout", base_url: environment variable SHOP_URL is not '
            "set (set it, or give a default: ${SHOP_URL:-value})",
            id="undefined-env-var",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: buy
                    click: {role: button, text: Buy}
            """,
            'shop.yaml:5: journey "checkout", steps[0].click: a locator needs exactly one of '
            "role, label, placeholder, text, test_id, css; got role, text",
            id="ambiguous-locator",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: buy
                    click: {role: buton, name: Buy}
            """,
            "shop.yaml:5: journey \"checkout\", steps[0].click: unknown role 'buton'; "
            "did you mean 'button'?",
            id="unknown-role",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: buy
                    goto: /
                    click: {text: Buy}
            """,
            'shop.yaml:4: journey "checkout", steps[0]: a step needs exactly one action of '
            "goto, click, fill, select, check, uncheck, press, hover, wait_for, wait_for_load, "
            "python; got goto, click",
            id="two-actions",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: pay
                    fill: {label: Card}
            """,
            "shop.yaml:4: journey \"checkout\", steps[0]: 'fill' needs a 'value'",
            id="fill-without-value",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: home
                    goto: /
                    expect:
                      - url: "(unclosed"
            """,
            'shop.yaml:7: journey "checkout", steps[0].expect[0].url: invalid regular '
            "expression '(unclosed'",
            id="bad-regex",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                devices: [desktop, iphone 13]
                steps:
                  - name: home
                    goto: /
            """,
            "shop.yaml:3: journey \"checkout\", devices[1]: unknown device 'iphone 13'; "
            "did you mean 'iPhone 13'?",
            id="unknown-device",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                budgets:
                  page_load: {warn: 5s, fail: 3s}
                steps:
                  - name: home
                    goto: /
            """,
            'shop.yaml:4: journey "checkout", budgets.page_load: warn (5.0) must not exceed '
            "fail (3.0)",
            id="budget-levels-inverted",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                steps:
                  - name: home
                    goto: [
            """,
            "shop.yaml:6: invalid YAML: did not find expected node content",
            id="yaml-syntax",
        ),
        pytest.param(
            """
            journeys:
              - name: checkout
                name: again
                steps:
                  - name: home
                    goto: /
            """,
            "shop.yaml:3: journey \"checkout\", name: duplicate key 'name'",
            id="duplicate-yaml-key",
        ),
    ],
)
def test_config_mistake_names_file_line_and_expected_form(yaml_text: str, expected: str) -> None:
    problems = problems_of(yaml_text)

    assert any(problem.startswith(expected) for problem in problems), problems


def test_every_mistake_in_a_file_is_reported_not_just_the_first() -> None:
    problems = problems_of(
        """
        defaults:
          interval: soon
        journeys:
          - name: checkout
            base_url: ${NOT_SET}
            steps:
              - name: home
                goto: /
                timeout: 1 minute
              - name: home
                clik: {text: Buy}
        """
    )

    lines = [p.split(":")[1] for p in problems]
    assert lines == ["2", "5", "9", "10", "11"], problems


def test_no_traceback_and_exit_code_2_for_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("journeys:\n  - name: x\n    steps:\n      - name: a\n        gotoo: /\n")

    done = subprocess.run(
        [sys.executable, "-m", "probes.cli", "check", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2
    assert f"{broken}:5: journey \"x\", steps[0].gotoo: unknown key 'gotoo'" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_accepts_a_directory_of_valid_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yml").write_text(VALID.replace("checkout", "login"))

    done = subprocess.run(
        [sys.executable, "-m", "probes.cli", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "ok: 2 journeys (4 runs per round) in 2 files" in done.stdout


def test_a_journey_name_used_in_two_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)

    with pytest.raises(ConfigError) as caught:
        load_config([tmp_path])

    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f'{tmp_path / "b.yaml"}:3: journey "checkout": journey name '
        f"is already used at {tmp_path / 'a.yaml'}:3"
    )


def test_shipped_example_configs_are_valid() -> None:
    config = load_config(["configs"], env={"SHOP_VOUCHER": "WELCOME10"})

    assert {j.name for j in config.journeys} == {"checkout-with-voucher"}
    assert config.warnings == ()


def test_check_without_the_secrets_warns_about_them_and_passes() -> None:
    # A CI job validating configs has no production secrets.
    config = load_config(["configs"], env={}, missing="warn")

    assert [w.message for w in config.warnings] == [
        "environment variable SHOP_VOUCHER is not set "
        "(set it, or give a default: ${SHOP_VOUCHER:-value})"
    ]
    with pytest.raises(ConfigError, match="SHOP_VOUCHER is not set"):
        load_config(["configs"], env={})  # running them needs it


def test_parcours_check_passes_on_the_shipped_example_without_its_secrets() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SHOP_VOUCHER"}
    done = subprocess.run(
        [sys.executable, "-m", "probes.cli", "check", "configs/"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    lines = Path("configs/example-shop.yaml").read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "${secret:SHOP_VOUCHER}" in text)
    assert f"warning: configs/example-shop.yaml:{line}:" in done.stderr
    assert "SHOP_VOUCHER is not set" in done.stderr


def test_plain_parameters_are_shown_and_declared_secrets_masked() -> None:
    config = load_config_text(
        VALID.replace("http://shop.test", "${SHOP_URL}/?v=${secret:VOUCHER}"),
        env={"SHOP_URL": "http://shop.internal:8080", "VOUCHER": "WELCOME-2026"},
    )

    assert config.journeys[0].base_url == "http://shop.internal:8080/?v=WELCOME-2026"
    assert (
        config.masker.mask(str(config.journeys[0].base_url)) == "http://shop.internal:8080/?v=***"
    )
    assert config.warnings == ()


def test_a_parameter_named_like_a_secret_is_masked_and_asked_to_be_declared() -> None:
    config = load_config_text(
        VALID.replace("http://shop.test", "http://shop.test/?t=${API_TOKEN}"),
        "shop.yaml",
        env={"API_TOKEN": "tok-0123456789"},
    )

    assert config.masker.mask("t=tok-0123456789") == "t=***"
    (warning,) = config.warnings
    assert "declare it as ${secret:API_TOKEN}" in str(warning)
    assert str(warning).startswith("shop.yaml:")


def test_yaml_boolean_key_gets_a_quoting_hint() -> None:
    problems = problems_of(
        """
        journeys:
          - name: search
            steps:
              - name: submit search
                press: Enter
                on: {role: searchbox}
        """
    )

    assert problems == ['shop.yaml:6: YAML reads the key on as True; quote it as "on"']


def test_filling_a_password_field_with_a_plain_value_is_warned_about() -> None:
    config = load_config_text(
        """
        journeys:
          - name: log in
            base_url: http://shop.test
            steps:
              - name: password
                fill: {label: Password}
                value: hunter2-plain
              - name: password again
                fill: {label: Password}
                value: ${secret:SHOP_PASSWORD}
        """,
        "shop.yaml",
        env={"SHOP_PASSWORD": "from-the-vault"},
    )

    (warning,) = config_warnings(config)
    assert 'step "password" fills a password field with a value that is not a secret' in warning


def test_defaults_apply_unless_a_journey_sets_its_own() -> None:
    config = load_config_text(
        textwrap.dedent(
            """
            defaults:
              interval: 5m
              devices: [mobile]
            journeys:
              - name: fast
                interval: 30s
                steps: [{name: home, goto: /}]
              - name: plain
                steps: [{name: home, goto: /}]
            """
        ),
        env={},
    )

    fast, plain = config.journeys
    assert (fast.interval, plain.interval) == (30.0, 300.0)
    assert fast.devices == plain.devices == ("mobile",)
    assert (plain.step_timeout, plain.retries, plain.click_budget) == (10.0, 1, 3)
    assert plain.budgets.page_load is not None and plain.budgets.page_load.warn == 3.0


def test_env_substitution_with_default_and_escape() -> None:
    config = load_config_text(
        VALID.replace("http://shop.test", "${SHOP_URL:-http://fallback.test}/$${literal}"),
        env={},
    )

    assert config.journeys[0].base_url == "http://fallback.test/${literal}"
    assert not config.masker  # defaults written in the file are not secrets


def test_values_from_the_environment_are_masked_plain_and_url_encoded() -> None:
    config = load_config_text(
        VALID.replace("http://shop.test", "${secret:SHOP_URL}"),
        env={"SHOP_URL": "http://p@ss w0rd"},
    )

    masker = config.masker
    assert masker.mask("go to http://p@ss w0rd/x") == "go to ***/x"
    assert masker.mask("q=http%3A%2F%2Fp%40ss%20w0rd") == "q=***"
    assert masker.mask("q=http%3A%2F%2Fp%40ss+w0rd") == "q=***"


def test_secret_in_an_error_message_is_masked() -> None:
    problems = problems_of(
        """
        journeys:
          - name: checkout
            retries: ${secret:RETRIES}
            steps: [{name: home, goto: /}]
        """,
        env={"RETRIES": "hunter2-secret"},
    )

    assert problems == [
        'shop.yaml:3: journey "checkout", retries: input should be a valid integer, '
        "unable to parse string as an integer, got '***'"
    ]


def test_too_short_secrets_are_not_masked_but_reported() -> None:
    masker = Masker(["ab", "long-enough"])

    assert masker.too_short == ["ab"]
    assert masker.mask("ab long-enough") == "ab ***"


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("3s", 3.0), ("1m", 60.0), ("1m30s", 90.0), ("2h", 7200)]
)
def test_durations_as_ops_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["3 sec", "3", "", "1.5", "ms", "3s3", "-1s", 3])
def test_durations_that_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like 500ms, 3s, 1m"):
        parse_duration(text)


def test_the_committed_json_schema_is_the_one_the_code_produces() -> None:
    """Regenerate with: .venv/bin/parcours schema > configs/parcours.schema.json"""
    from probes.config.document import json_schema

    committed = json.loads(Path("configs/parcours.schema.json").read_text())

    assert committed == json.loads(json.dumps(json_schema()))


@pytest.mark.parametrize(
    "path",
    [
        "configs/example-shop.yaml",
        "configs/compose/journeys/demo.yaml",
        "probes/demo_shop/journey.yaml",
    ],
)
def test_shipped_configs_satisfy_the_editor_schema(path: str) -> None:
    schema = json.loads(Path("configs/parcours.schema.json").read_text())

    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(Path(path).read_text()))


def test_the_editor_schema_flags_a_typo_too() -> None:
    schema = json.loads(Path("configs/parcours.schema.json").read_text())
    typo = {"journeys": [{"name": "x", "steps": [{"name": "a", "clikc": {"text": "Buy"}}]}]}

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(typo))

    assert any("clikc" in error.message for error in errors)


def test_parcours_help_speaks_to_users_not_developers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "probes.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0
    assert "parcours test configs/" in done.stdout
    assert "``" not in done.stdout and "nothing imports it" not in done.stdout


def test_the_documented_real_shop_example_is_valid_without_its_secrets() -> None:
    config = load_config(["docs/examples"], env={}, missing="warn")

    (journey,) = config.journeys
    assert journey.name == "oscar-guest-checkout" and len(journey.cleanup) == 6
    assert [w.message.split(" (")[0] for w in config.warnings] == [
        "environment variable OSCAR_STAFF_PASSWORD is not set"
    ]


def test_alerting_sensitivity_presets_and_min_locations_reach_the_journeys() -> None:
    config = load_config_text(
        """
defaults:
  alerting: {sensitivity: low}
journeys:
  - name: quiet
    base_url: http://shop.test
    steps: [{name: home, goto: /}]
  - name: strict
    base_url: http://shop.test
    alerting: {min_locations: 3}
    steps: [{name: home, goto: /}]
  - name: api
    kind: tcp
    host: shop.test
    port: 443
    alerting: {sensitivity: high}
""",
        env={},
    )

    assert [j.alert_min_locations for j in config.journeys] == [0.5, 3.0, 0.05]
    problems = problems_of(
        """
        journeys:
          - name: both
            alerting: {sensitivity: high, min_locations: 2}
            steps: [{name: home, goto: /}]
        """
    )
    assert problems == [
        'shop.yaml:3: journey "both", alerting: alerting needs exactly one of sensitivity '
        "(low, medium, high) or min_locations"
    ]


def test_a_capture_used_before_any_step_captures_it_is_a_config_error() -> None:
    problems = problems_of(
        """
        journeys:
          - name: order
            steps:
              - name: open the order
                goto: /order/{{order}}
              - name: place order
                click: {role: button, name: Place order}
                capture:
                  order: {text: {test_id: order-id}}
            cleanup:
              - name: cancel
                goto: /order/{{order}}/cancel?by={{who}}
        """
    )

    assert problems == [
        "shop.yaml:2: journey \"order\": step 'open the order' uses {{order}}, "
        "which no earlier step captures"
    ]
    assert (
        "cleanup step 'cancel' uses {{who}}"
        in problems_of(
            """
        journeys:
          - name: order
            steps:
              - name: place order
                click: {role: button, name: Place order}
                capture:
                  order: {text: {test_id: order-id}}
            cleanup:
              - name: cancel
                goto: /order/{{order}}/cancel?by={{who}}
        """
        )[0]
    )

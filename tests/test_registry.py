"""registry.yaml: the built-in file loads, and each kind of problem gets one clear message."""

from pathlib import Path

import pytest
import yaml

from adapters.pixelstats import PixelStats
from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.registry import BUILTIN_REGISTRY, load_registry, run_tags

PINS = {
    "patchcore": "fcaa92f124fb1ad74a7acf56726decd4b27cbcad",
    "simplenet": "351a2b8d4e8cfc944dbccbf9bc6ceda930c6f26b",
    "csflow": "88a13b8b3c6eeb1e9bfdcef453adb552fb476cd3",
    "draem": "2dbf67397ab5c10a1494e5ae70ab59a25d7c35ef",
    "revdist": "7f2ceb7c87e602617b8600e1a498f7ef7f5247d6",
}


def test_builtin_registry_has_the_five_methods_pinned():
    reg = load_registry()
    for name, commit in PINS.items():
        e = reg.methods[name]
        assert e.commit == commit and e.repo.startswith("https://github.com/")
        assert e.params and "quick" in e.profiles and e.license
    assert reg.methods["csflow"].license == "none"
    assert "pixelstats" in reg.available(default_only=False)


def _write(tmp_path: Path, methods: dict) -> Path:
    p = tmp_path / "user.yaml"
    p.write_text(yaml.safe_dump({"methods": methods}))
    return p


GOOD = {"adapter": "adapters.pixelstats:PixelStats", "params": {"grid": [8, 8], "seed": 0}}


@pytest.mark.parametrize(
    "entry, message",
    [
        ({**GOOD, "colour": 1}, "unknown key 'colour'"),
        ({**GOOD, "repo": "https://example.org/a/b"}, "has a repo but no 'commit' pin"),
        (
            {**GOOD, "repo": "https://example.org/a/b", "commit": "abc123"},
            "commit 'abc123' is not a full 40-hex SHA",
        ),
        ({**GOOD, "adapter": "no_such_module:Thing"}, "class no_such_module:Thing not importable"),
        ({**GOOD, "adapter": "adapters.pixelstats:Missing"}, "not importable"),
        ({**GOOD, "resources": {"gpu": -1}}, "resources.gpu must be a finite number >= 0"),
        ({**GOOD, "resources": {"cpu": "two"}}, "resources.cpu must be a finite number >= 0"),
        ({**GOOD, "resources": {"tpu": 1}}, "resources: unknown key 'tpu'"),
        ({**GOOD, "capabilities": ["telepathy"]}, "unknown capability 'telepathy'"),
        ({**GOOD, "status": "maybe"}, "status must be one of"),
        ({**GOOD, "profiles": {"quick": {"nope": 1}}}, "profile 'quick' sets unknown parameter"),
        ({**GOOD, "chosen": {"nope": "by hand"}}, "chosen: unknown parameter 'nope'"),
        ({**GOOD, "parity": {"tolerance": -1}}, "parity: tolerance must be >= 0"),
        ({**GOOD, "parity": {"tol": 0.1}}, "parity must be a mapping of"),
        ({**GOOD, "checkout": "../elsewhere"}, "checkout must be a folder name"),
        ({"params": {}}, "missing 'adapter'"),
    ],
)
def test_each_problem_has_a_clear_message(tmp_path, entry, message):
    with pytest.raises(UserError) as err:
        load_registry(_write(tmp_path, {"mine": entry}))
    assert message in str(err.value) and "methods.mine" in str(err.value)


def test_all_problems_reported_together(tmp_path):
    bad = {"a": {**GOOD, "colour": 1}, "b": {**GOOD, "resources": {"gpu": -1}}}
    with pytest.raises(UserError) as err:
        load_registry(_write(tmp_path, bad))
    assert "methods.a" in str(err.value) and "methods.b" in str(err.value)


def test_planned_method_with_missing_class_is_listed_unavailable(tmp_path):
    reg = load_registry(
        _write(tmp_path, {"later": {**GOOD, "adapter": "nope:X", "status": "planned"}})
    )
    assert "later" not in reg.available(default_only=False)
    with pytest.raises(UserError, match="not available"):
        reg.build("later")


def test_user_registry_merges_over_builtin(tmp_path):
    reg = load_registry(
        _write(
            tmp_path,
            {
                "pixelstats": {
                    "params": {"grid": [8, 8], "seed": 0, "smoothing_sigma": 0.0, "eps": 0.1}
                }
            },
        )
    )
    e = reg.methods["pixelstats"]
    assert e.params["grid"] == [8, 8] and e.adapter == "adapters.pixelstats:PixelStats"
    assert e.origin == "user.yaml"


def test_build_merges_profile_and_overrides_and_tags():
    reg = load_registry()
    a = reg.build("pixelstats", overrides={"grid": [16, 16]}, source="auto")
    assert isinstance(a, PixelStats) and a.config["grid"] == [16, 16] and a.source == "native"
    assert run_tags(a) == {
        "method": "pixelstats",
        "source": "native",
        "upstream_commit": "",
        "vendor_dirty": "n/a",
        "weights_backbone": "",
        "weights_source": "none",
        "weights_sha256": "",
    }
    with pytest.raises(UserError, match="unknown parameter"):
        reg.build("pixelstats", overrides={"gird": 3})
    with pytest.raises(UserError, match="no upstream source|has no upstream"):
        reg.build("pixelstats", source="upstream")
    quick = reg.methods["patchcore"].resolved_config("quick")
    assert quick["backbone"] == "efficientnet_lite0" and quick["pretrained"] is True
    assert quick["layers"] == ["_blocks.4", "_blocks.10"]
    assert reg.methods["patchcore"].resolved_config("paper")["backbone"] == "wide_resnet50_2"


def test_builtin_file_is_valid_yaml_with_comments():
    assert "methods" in yaml.safe_load(BUILTIN_REGISTRY.read_text())


def test_methods_command(capsys, tmp_path):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "pixelstats" in out and "fcaa92f124fb" in out and "Apache-2.0" in out
    planned = _write(tmp_path, {"pixelstats": {"status": "planned"}})
    assert main(["methods", "--registry", str(planned)]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("pixelstats"))
    assert "planned" in row
    assert main(["methods", "--registry", str(_write(tmp_path, {"x": {"params": {}}}))]) == 2
    assert "missing 'adapter'" in capsys.readouterr().err


def test_parity_goals_provenance_and_choices_live_in_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_VENDOR", str(tmp_path / "v"))
    reg = load_registry()
    for name in PINS:
        e = reg.methods[name]
        assert e.parity is not None and e.parity.tolerance == 0.02
        assert e.parity.stochastic == (name != "patchcore")  # PatchCore trains nothing
        assert e.checkout_dir == tmp_path / "v" / name
        assert reg.build(name, profile="quick", source="native").checkout_dir == e.checkout_dir
    # every value once chosen on test AUROC now says how it was chosen on validation data
    for name, key in [("simplenet", "noise_std"), ("simplenet", "meta_epochs"),
                      ("csflow", "sub_epochs"), ("revdist", "epochs")]:  # fmt: skip
        assert key in reg.methods[name].profiles["quick"]
        assert "validation" in reg.methods[name].chosen[key]
    from orchestrator.ensemble.adapter import FeatureEnsemble

    assert "validation" in reg.ensemble_chosen["noise_std"]
    assert reg.ensemble_params["noise_std"] == FeatureEnsemble.default_config["noise_std"]
    user = tmp_path / "user.yaml"
    user.write_text("ensemble: {params: {noise_std: 2.0, colour: 1}}\nmethods: {}\n")
    with pytest.raises(UserError, match="ensemble: unknown parameter 'colour'"):
        load_registry(user)


@pytest.mark.parametrize(
    "method, key, value",
    [
        ("patchcore", "smoothing_sigma", 2.5),  # a float for a float parameter
        ("patchcore", "smoothing_sigma", 2),  # an int where a number is wanted
        ("patchcore", "image_size", [48, 64]),  # registry.yaml uses both an int and a list
        ("patchcore", "image_size", 96),
        ("draem", "iterations_per_epoch", None),  # params say null (one pass), quick says 50
        ("csflow", "clamp", 1.5),
        ("pixelstats", "grid", [16, 16]),
    ],
)
def test_set_values_of_the_registry_types_are_accepted(method, key, value):
    reg = load_registry()
    for profile in ("paper", "quick"):
        assert reg.get(method).resolved_config(profile, {key: value})[key] == value


@pytest.mark.parametrize(
    "method, key, value, message",
    [
        ("pixelstats", "seed", 1.5, "expected an integer"),
        ("pixelstats", "seed", True, "expected an integer"),
        ("pixelstats", "grid", "banana", "expected a list"),
        ("pixelstats", "grid", ["a", "b"], "expected a list of numbers"),
        ("patchcore", "smoothing_sigma", float("inf"), "expected a finite number"),
        ("patchcore", "pretrained", "yes", "expected true or false"),
    ],
)
def test_set_values_of_other_types_are_refused(method, key, value, message):
    with pytest.raises(UserError, match=message):
        load_registry().get(method).resolved_config("quick", {key: value})


def test_yaml_text_numbers_become_floats():
    """YAML reads 1e-4 (no dot) as text; a float parameter takes it as the number."""
    config = load_registry().get("patchcore").resolved_config("paper", {"smoothing_sigma": "1e-1"})
    assert config["smoothing_sigma"] == pytest.approx(0.1)

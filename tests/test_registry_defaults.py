"""Built-in methods: registry.yaml's params equal the adapter's default_config, key for key;
every engine method has one shape (adapter.py, native.py, upstream.py); an upstream engine
gets the registry entry's checkout and records its state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.base import UpstreamState
from adapters.common.engine import EngineAdapter, EngineBase
from orchestrator.registry import BUILTIN_REGISTRY, load_registry

REGISTRY = load_registry()
#: the built-in methods with an adapter (status available and importable)
BUILTIN = sorted(
    name
    for name in yaml.safe_load(BUILTIN_REGISTRY.read_text())["methods"]
    if REGISTRY.methods[name].available
)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type, element by element (``3`` is not ``3.0``, ``1`` not ``True``):
    the types of the defaults are the types ``--set`` accepts."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def differences(params: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """One line per key on which the registry's params and the adapter's defaults differ."""
    out = [f"{k}: only in registry.yaml params ({params[k]!r})" for k in params.keys() - defaults]
    out += [f"{k}: only in default_config ({defaults[k]!r})" for k in defaults.keys() - params]
    out += [
        f"{k}: registry.yaml {params[k]!r} ({type(params[k]).__name__}) != default_config "
        f"{defaults[k]!r} ({type(defaults[k]).__name__})"
        for k in params.keys() & defaults.keys()
        if not _same(params[k], defaults[k])
    ]
    return sorted(out)


def test_the_builtin_methods_are_all_checked() -> None:
    assert {"patchcore", "simplenet", "csflow", "draem", "revdist", "pixelstats"} <= set(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_registry_params_equal_adapter_defaults(name: str) -> None:
    raw = yaml.safe_load(BUILTIN_REGISTRY.read_text())["methods"][name]
    entry = REGISTRY.methods[name]
    # the file's own params (not the loader's fallback to default_config when they are absent)
    assert raw.get("params") and entry.params == raw["params"]
    cls = entry.adapter_class()
    diff = differences(entry.params, dict(cls.default_config))
    assert not diff, f"{name}: registry.yaml params vs {cls.__qualname__}.default_config:\n" + (
        "\n".join(diff)
    )


def test_differences_name_each_key() -> None:
    """The check above fails on a changed side: a missing, an extra and a retyped key."""
    params = {"a": 1, "b": [1, 2], "c": 3, "same": True}
    defaults = {"a": 1.0, "b": [1, 2], "d": None, "same": True}
    assert differences(params, defaults) == [
        "a: registry.yaml 1 (int) != default_config 1.0 (float)",
        "c: only in registry.yaml params (3)",
        "d: only in default_config (None)",
    ]
    assert differences(params, params) == []
    assert differences({"k": [1, 2]}, {"k": [1, 3]}) and differences({"k": True}, {"k": 1})


ENGINE_METHODS = [
    n for n in BUILTIN if issubclass(REGISTRY.methods[n].adapter_class(), EngineAdapter)
]


def test_the_five_methods_are_engine_adapters() -> None:
    assert set(ENGINE_METHODS) == {"patchcore", "simplenet", "csflow", "draem", "revdist"}


@pytest.mark.parametrize("name", ENGINE_METHODS)
def test_engine_methods_have_one_shape(name: str) -> None:
    """``adapters/<name>/``: adapter.py (the adapter), native.py (``Native<Adapter>``),
    upstream.py (``Upstream<Adapter>``), both engines importable without a checkout."""
    cls = REGISTRY.methods[name].adapter_class()
    package = cls.__module__.rpartition(".")[0]
    assert cls.__module__ == f"{package}.adapter"
    folder = Path(__import__(package, fromlist=["_"]).__file__).parent
    assert {"adapter.py", "native.py", "upstream.py"} <= {p.name for p in folder.iterdir()}
    for source in ("native", "upstream"):
        engine = cls.engine_class(source)
        assert engine.__module__ == f"{package}.{source}"
        assert engine.__name__ == f"{source.title()}{cls.__name__}"
        for method in ("fit", "predict", "features", "state", "set_state", "upstream_state"):
            assert callable(getattr(engine, method, None)), f"{engine.__name__}.{method}"


class ToyNative(EngineBase):
    def fit(self, train) -> None: ...


class ToyUpstream(ToyNative):
    def __init__(self, config: dict, device, checkout: Path):
        super().__init__(config, device, checkout)
        self.checkout = checkout


class Toy(EngineAdapter):
    name = "toy"
    native_engine = f"{__name__}:ToyNative"
    upstream_engine = f"{__name__}:ToyUpstream"


def test_engine_paths_follow_the_shape_unless_named() -> None:
    from adapters.csflow import CSFlow

    assert CSFlow.native_engine == "adapters.csflow.native:NativeCSFlow"
    assert CSFlow.upstream_engine == "adapters.csflow.upstream:UpstreamCSFlow"
    assert Toy.engine_class("upstream") is ToyUpstream

    class Slower(CSFlow):  # a subclass elsewhere keeps its base's engines
        pass

    assert Slower.engine_class("native").__name__ == "NativeCSFlow"


def test_upstream_engine_gets_the_entry_checkout_and_records_its_state(tmp_path) -> None:
    import git

    repo = git.Repo.init(tmp_path / "toy")
    (tmp_path / "toy" / "model.py").write_text("x = 1\n")
    repo.index.add(["model.py"])
    who = git.Actor("t", "t@example.org")
    head = repo.index.commit("pin", author=who, committer=who).hexsha
    adapter = Toy({}, source="upstream")
    adapter.checkout = tmp_path / "toy"  # what Registry.build sets from the entry
    assert adapter.engine.checkout == tmp_path / "toy"
    assert adapter.engine.upstream_state() == UpstreamState(tmp_path / "toy", head, True)
    assert (adapter.upstream_commit, adapter.vendor_clean) == (head, True)
    (tmp_path / "toy" / "model.py").write_text("x = 2\n")  # a modified checkout is tagged so
    dirty = Toy({}, source="upstream")
    dirty.checkout = tmp_path / "toy"
    assert dirty.engine.upstream_state().clean is False and dirty.vendor_clean is False
    native = Toy({}, source="native")
    assert native.engine.upstream_state() is None and native.upstream_commit is None

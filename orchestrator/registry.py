"""The method registry: registry.yaml (+ a user's file + entry points) -> validated entries.

Each entry names its adapter class (``module:Class``), the upstream repository and pinned
commit, the paper's default hyperparameters and named profiles, per-trial resources and
capabilities. ``Registry.build`` turns an entry into a configured adapter, resolving the
``auto`` source to the vendored upstream code or the native implementation.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from adapters.base import ALL_CAPABILITIES, Adapter, Resources
from orchestrator.ensemble.config import DEFAULT_CONFIG as ENSEMBLE_DEFAULTS
from orchestrator.errors import UserError
from orchestrator.paths import builtin_registry, vendor_dir

#: registry.yaml of the source checkout, else the packaged copy (orchestrator.paths)
BUILTIN_REGISTRY = builtin_registry()
ENTRY_POINT_GROUP = "orchestrator.adapters"
#: how a registry entry from an entry point names its origin
ENTRY_POINT_ORIGIN = "entry point"
#: warnings about entry points already printed in this process (said once)
_WARNED: set[str] = set()
ENTRY_KEYS = {
    "adapter",
    "checkout",
    "parity",
    "chosen",
    "repo",
    "commit",
    "license",
    "paper",
    "params",
    "profiles",
    "resources",
    "capabilities",
    "status",
    "default",
}
RESOURCE_KEYS = {"gpu", "cpu", "memory_gb"}
STATUSES = {"available", "planned"}
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
#: what a method name may be: it names folders (vendor/<name>) and MLflow tags
NAME_RE = re.compile(r"[a-z0-9_-]+")  # used with fullmatch
#: what the module part of ``module:Class`` may be (dotted Python identifiers)
MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class ParityGoal:
    """How close the upstream and native sources must be (``orchestrate parity``).

    Deterministic methods (``seeds: 1``): |delta image AUROC| and |delta pixel AUROC| <=
    ``tolerance``. Stochastic ones (``seeds: n > 1``): the native source runs with n seeds and
    the upstream AUROC must lie within the native spread (max - min over the seeds) of the
    native mean, the spread taken as at least ``tolerance``.
    """

    tolerance: float = 0.02
    seeds: int = 1
    min_correlation: float | None = None  # of the image scores (deterministic methods)

    @property
    def stochastic(self) -> bool:
        return self.seeds > 1


@dataclass
class MethodEntry:
    name: str
    adapter: str
    repo: str | None = None
    commit: str | None = None
    license: str | None = None
    paper: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    capabilities: frozenset[str] = ALL_CAPABILITIES
    status: str = "available"
    default: bool = True
    origin: str = "registry.yaml"
    import_error: str | None = None
    #: folder of the upstream checkout under the vendor directory (default: the method name)
    checkout: str | None = None
    #: the goal of ``orchestrate parity`` (ParityGoal); None: no parity goal
    parity: ParityGoal | None = None
    #: parameter -> how its profile value was chosen (validation data, or why not tuned)
    chosen: dict[str, str] = field(default_factory=dict)
    #: the folder of the user registry file that named this adapter (its module may lie there)
    search_dir: Path | None = None

    @property
    def checkout_dir(self) -> Path:
        """Where ``orchestrate vendor sync`` puts this method's upstream checkout."""
        return vendor_dir() / (self.checkout or self.name)

    @property
    def available(self) -> bool:
        """Marked available and its adapter class imports."""
        return self.status == "available" and self.import_error is None

    def adapter_class(self) -> type[Adapter]:
        return import_adapter(self.adapter, self.search_dir)

    def values_of(self, key: str) -> list[Any]:
        """Every value the registry and the adapter give ``key`` (params, each profile, the
        class' default_config): the types an override of it may take."""
        values = [self.params.get(key), *(p[key] for p in self.profiles.values() if key in p)]
        try:
            defaults = getattr(self.adapter_class(), "default_config", {}) or {}
        except Exception:  # noqa: BLE001 - an unimportable adapter is reported elsewhere
            defaults = {}
        if key in defaults:
            values.append(defaults[key])
        return values

    def resolved_config(
        self, profile: str = "paper", overrides: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """params <- profile overrides (unless ``paper``) <- user overrides."""
        config = dict(self.params)
        if profile != "paper":
            config.update(self.profiles.get(profile, {}))
        unknown = sorted(set(overrides or {}) - set(config))
        if unknown:
            raise UserError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(config))})"
            )
        for key, value in (overrides or {}).items():
            if isinstance(config[key], float) and isinstance(value, str):
                try:  # YAML reads 1e-4 (no dot) as text
                    value = float(value)
                except ValueError:
                    pass
            problems = [type_problem(d, value) for d in self.values_of(key)]
            if all(problems):
                raise UserError(f"{self.name}.{key}={value!r}: {problems[0]}")
            config[key] = value
        return config


def type_problem(default: Any, value: Any) -> str | None:
    """Why ``value`` cannot replace a parameter whose default is ``default`` (None: it can).

    The default's type is the contract: a bool wants a bool, an int an int, a float a finite
    number, a string a string, a list a list (of numbers when the default's are numbers).
    """
    if default is None:
        return None

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if isinstance(default, bool):
        return None if isinstance(value, bool) else "expected true or false"
    if isinstance(default, int):  # an int default takes ints (a float default, numbers)
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "expected an integer"
    if isinstance(default, float):
        if not number(value):
            return "expected a number"
        return None if math.isfinite(value) else "expected a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "expected text"
    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            return f"expected a list like {list(default)}"
        if default and all(number(v) for v in default) and not all(number(v) for v in value):
            return f"expected a list of numbers like {list(default)}"
        return None
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "expected a mapping"
    return None


def import_adapter(path: str, search_dir: str | Path | None = None) -> type[Adapter]:
    """Import ``module:Class`` and check it is an Adapter subclass.

    ``search_dir`` (the folder of a user registry file): when the top-level module named by
    ``path`` lies there (``<mod>.py`` or ``<mod>/__init__.py``), that one file or package is
    imported by an explicit spec. The folder never goes on ``sys.path`` (a ``ray.py`` beside
    the registry is never imported), and a module that would shadow an installed one of the
    same name is refused.
    """
    module_name, _, cls_name = path.partition(":")
    if not MODULE_RE.fullmatch(module_name) or not cls_name.isidentifier():
        raise ImportError(f"adapter must be 'module:Class' (Python names), got {path!r}")
    if search_dir is not None:
        _import_beside_registry(module_name.partition(".")[0], Path(search_dir))
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ImportError(f"{path} is not a subclass of adapters.base.Adapter")
    return cls


#: set on a module imported from beside a registry file
_BESIDE_REGISTRY = "__orchestrator_beside_registry__"


def _import_beside_registry(top: str, folder: Path) -> None:
    """Import module ``top`` from ``folder`` by spec (see :func:`import_adapter`)."""
    file, package = folder / f"{top}.py", folder / top / "__init__.py"
    path = package if package.is_file() else file
    if not path.is_file():
        return  # not beside the registry: an installed module, imported the usual way
    loaded = sys.modules.get(top)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
            return
        if not getattr(loaded, _BESIDE_REGISTRY, False):
            raise ImportError(f"{path} would shadow the imported module {top!r}; rename it")
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]  # another registry's module of that name: this one now
    found = importlib.util.find_spec(top)
    if found is not None and Path(found.origin or "").resolve() != path.resolve():
        raise ImportError(f"{path} would shadow the installed module {top!r}; rename it")
    locations = [str(path.parent)] if path == package else None
    spec = importlib.util.spec_from_file_location(top, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    setattr(module, _BESIDE_REGISTRY, True)
    sys.modules[top] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[top]
        if isinstance(exc, Exception | KeyboardInterrupt):
            raise
        raise ImportError(f"{path} raised {type(exc).__name__} when imported") from exc


def _parse_entry(
    name: str, raw: Any, origin: str, problems: list[str], search_dir: Path | None = None
) -> MethodEntry | None:
    where = f"{origin}: methods.{name}"
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        problems.append(
            f"{origin}: method name {name!r} must match [a-z0-9_-]+ (it names folders and tags)"
        )
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    for key in sorted(set(raw) - ENTRY_KEYS):
        problems.append(f"{where}: unknown key {key!r} (known: {', '.join(sorted(ENTRY_KEYS))})")
    if "adapter" not in raw:
        problems.append(f"{where}: missing 'adapter' (module:Class)")
        return None
    repo, commit = raw.get("repo"), raw.get("commit")
    if repo and not commit:
        problems.append(f"{where}: has a repo but no 'commit' pin (40-hex SHA)")
    if commit is not None and not SHA_RE.match(str(commit)):
        problems.append(f"{where}: commit {commit!r} is not a full 40-hex SHA")
    res_raw = raw.get("resources", {}) or {}
    resources = Resources()
    if not isinstance(res_raw, dict):
        problems.append(f"{where}: resources must be a mapping of gpu, cpu, memory_gb")
    else:
        for key in sorted(set(res_raw) - RESOURCE_KEYS):
            problems.append(f"{where}: resources: unknown key {key!r}")
        vals = {}
        for key in RESOURCE_KEYS & set(res_raw):
            v = res_raw[key]
            if (
                not isinstance(v, int | float)
                or isinstance(v, bool)
                or not math.isfinite(v)
                or v < 0
            ):
                problems.append(f"{where}: resources.{key} must be a finite number >= 0, got {v!r}")
            else:
                vals[key] = float(v)
        if vals.get("cpu", 1.0) == 0:
            problems.append(f"{where}: resources.cpu must be > 0")
        resources = Resources(**vals)
    caps = frozenset(raw.get("capabilities", ALL_CAPABILITIES))
    for c in sorted(caps - ALL_CAPABILITIES):
        problems.append(f"{where}: unknown capability {c!r}")
    status = raw.get("status", "available")
    if status not in STATUSES:
        problems.append(f"{where}: status must be one of {sorted(STATUSES)}, got {status!r}")
    params = raw.get("params", {}) or {}
    profiles = raw.get("profiles", {}) or {}
    if not isinstance(params, dict) or not isinstance(profiles, dict):
        problems.append(f"{where}: params and profiles must be mappings")
        params, profiles = {}, {}
    entry = MethodEntry(
        checkout=_checkout_folder(raw.get("checkout"), where, problems),
        parity=_parity_goal(raw.get("parity"), where, problems),
        chosen=_chosen(raw.get("chosen"), where, problems),
        name=name,
        adapter=str(raw["adapter"]),
        repo=repo,
        commit=str(commit) if commit else None,
        license=raw.get("license"),
        paper=raw.get("paper", ""),
        params=dict(params),
        profiles={k: dict(v or {}) for k, v in profiles.items()},
        resources=resources,
        capabilities=caps & ALL_CAPABILITIES,
        status=status,
        default=bool(raw.get("default", True)),
        origin=origin,
        search_dir=search_dir,
    )
    try:
        cls = entry.adapter_class()
        # params the entry leaves out come from the class (a plugin's profile may then name
        # them: profiles are checked against the filled params below)
        if not entry.params and getattr(cls, "default_config", None):
            entry.params = dict(cls.default_config)
        if "resources" not in raw:
            entry.resources = cls.default_resources
        if "capabilities" not in raw:
            entry.capabilities = cls.capabilities
        missing = entry.capabilities - cls.capabilities
        if missing:
            problems.append(
                f"{where}: declares capabilities {sorted(missing)} that {entry.adapter} lacks"
            )
    except Exception as exc:  # noqa: BLE001 - any import failure is reported
        entry.import_error = f"{type(exc).__name__}: {exc}"
        if status == "available" and not origin.startswith(ENTRY_POINT_ORIGIN):
            problems.append(f"{where}: class {entry.adapter} not importable ({entry.import_error})")
        return entry  # a broken plugin: `methods` lists it, a survey naming it refuses
    for prof, over in entry.profiles.items():
        for key in sorted(set(over) - set(entry.params)):
            problems.append(f"{where}: profile {prof!r} sets unknown parameter {key!r}")
    for key in sorted(set(entry.chosen) - set(entry.params)):
        problems.append(f"{where}: chosen: unknown parameter {key!r}")
    return entry


def _checkout_folder(raw: Any, where: str, problems: list[str]) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or Path(raw).is_absolute() or ".." in Path(raw).parts:
        problems.append(f"{where}: checkout must be a folder name under the vendor directory")
        return None
    return raw


def _parity_goal(raw: Any, where: str, problems: list[str]) -> ParityGoal | None:
    if raw is None:
        return None
    known = {"tolerance", "seeds", "min_correlation"}
    if not isinstance(raw, dict) or set(raw) - known:
        problems.append(f"{where}: parity must be a mapping of {', '.join(sorted(known))}")
        return None
    try:
        goal = ParityGoal(
            tolerance=float(raw.get("tolerance", 0.02)),
            seeds=int(raw.get("seeds", 1)),
            min_correlation=(
                None if raw.get("min_correlation") is None else float(raw["min_correlation"])
            ),
        )
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: parity: {exc}")
        return None
    if goal.tolerance < 0 or goal.seeds < 1:
        problems.append(f"{where}: parity: tolerance must be >= 0 and seeds >= 1")
        return None
    return goal


def _chosen(raw: Any, where: str, problems: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        problems.append(f"{where}: chosen must map parameter names to text")
        return {}
    return {str(k): v for k, v in raw.items()}


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` by libyaml where PyYAML has it (several times faster: every command
    reads registry.yaml); a document it refuses is read again by the pure-Python parser, so
    the error names the line as it always did."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.load(text, Loader=loader)  # CSafeLoader: a safe loader
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def _read_yaml(path: Path, ensemble: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``methods`` mapping of a registry file; its ``ensemble`` section is merged into
    ``ensemble`` (``params`` and ``chosen``) when given."""
    try:
        data = _safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: cannot read registry (not UTF-8 text: {exc.reason})") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read registry ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("methods", {}), dict):
        raise UserError(f"{path}: a registry is a mapping with a 'methods' mapping")
    unknown = set(data) - {"methods", "ensemble"}
    if unknown:
        raise UserError(
            f"{path}: unknown top-level key(s) {sorted(unknown)} (expected methods, ensemble)"
        )
    section = data.get("ensemble") or {}
    if not isinstance(section, dict) or set(section) - {"params", "chosen"}:
        raise UserError(f"{path}: ensemble must be a mapping of params and chosen")
    if ensemble is not None:
        for key in ("params", "chosen"):
            ensemble.setdefault(key, {}).update(section.get(key) or {})
    return data.get("methods") or {}


@dataclass
class Registry:
    methods: dict[str, MethodEntry]
    #: the ensemble job's settings over FeatureEnsemble.default_config (registry ``ensemble``)
    ensemble_params: dict[str, Any] = field(default_factory=dict)
    #: ensemble parameter -> how its value was chosen
    ensemble_chosen: dict[str, str] = field(default_factory=dict)

    def available(self, default_only: bool = True) -> list[str]:
        """Names of usable methods (``default_only``: those a plain survey runs)."""
        return [
            n for n, e in self.methods.items() if e.available and (e.default or not default_only)
        ]

    def get(self, name: str) -> MethodEntry:
        if name not in self.methods:
            raise UserError(f"unknown method {name!r} (registered: {', '.join(self.methods)})")
        return self.methods[name]

    def build(
        self,
        name: str,
        overrides: dict[str, Any] | None = None,
        device: str = "cpu",
        source: str = "auto",
        profile: str = "paper",
        allow_dirty: bool = False,
    ) -> Adapter:
        """A configured adapter of method ``name`` with its source resolved."""
        from orchestrator.vendor import resolve_source

        entry = self.get(name)
        if not entry.available:
            why = entry.import_error or f"status {entry.status!r}"
            raise UserError(f"method {name!r} is not available ({why})")
        cls = entry.adapter_class()
        resolved, state = resolve_source(entry, cls, source, allow_dirty=allow_dirty)
        adapter = cls(entry.resolved_config(profile, overrides), device=device, source=resolved)
        adapter.checkout = entry.checkout_dir
        if resolved == "upstream" and state is not None:
            adapter.upstream_commit, adapter.vendor_clean = state.head, state.clean
        return adapter


def run_tags(adapter: Adapter) -> dict[str, str]:
    """Tags recorded with every result: method, source used, upstream commit, vendor state,
    where the backbone weights came from (``weights_source``, ``weights_sha256``)."""
    clean = getattr(adapter, "vendor_clean", None)
    return {
        "method": adapter.name,
        "source": adapter.source,
        "upstream_commit": adapter.upstream_commit or "",
        # one tag for the checkout's state: "n/a" for a native source (no checkout)
        "vendor_dirty": "n/a" if clean is None else str(not clean).lower(),
        **type(adapter).weights_tags(adapter.config, adapter.source),
    }


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(message, file=sys.stderr)


def _plugin_entry(adapter: str, where: str, problems: list[str]) -> dict[str, Any]:
    """An entry point's registry entry: what its adapter class declares
    (``registry_entry``: repo, commit, license, paper, params, profiles, resources, ... as in
    registry.yaml), not part of a default survey unless it says so. A class that does not
    import gives a bare entry (listed as broken, refused by a survey)."""
    entry: dict[str, Any] = {"default": False}
    try:
        declared = getattr(import_adapter(adapter), "registry_entry", None) or {}
    except Exception:  # noqa: BLE001 - _parse_entry records the import error
        declared = {}
    if callable(declared):
        declared = declared()
    if isinstance(declared, dict):
        entry.update(declared)
    else:
        problems.append(f"{where}: {adapter}.registry_entry must be a mapping like registry.yaml's")
    entry["adapter"] = adapter
    return entry


def load_registry(extra: str | Path | None = None, builtin: Path = BUILTIN_REGISTRY) -> Registry:
    """The built-in registry, entry-point adapters, then ``extra`` merged over them.

    Every problem found is collected and raised together as one UserError.
    """
    problems: list[str] = []
    ensemble: dict[str, Any] = {"params": {}, "chosen": {}}
    raw: dict[str, tuple[dict, str, Path | None]] = {
        name: (entry, builtin.name, None) for name, entry in _read_yaml(builtin, ensemble).items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if not NAME_RE.fullmatch(ep.name):  # one bad plugin must not stop every command
            dist = ep.dist.name if ep.dist else "?"
            print(
                f"warning: entry point {ep.name!r} of {dist} ignored (method names must "
                "match [a-z0-9_-]+)",
                file=sys.stderr,
            )
            continue
        dist = ep.dist.name if ep.dist else "?"
        if ep.name in raw:  # a built-in name: the built-in wins, said once
            _warn_once(
                f"warning: entry point {ep.name!r} of {dist} ({ep.value}) is ignored: the "
                f"built-in method {ep.name!r} has that name and wins (plugins never replace "
                "a built-in; register it under another name)"
            )
            continue
        origin = f"{ENTRY_POINT_ORIGIN} ({dist})"
        where = f"{origin}: methods.{ep.name}"
        raw[ep.name] = (_plugin_entry(ep.value, where, problems), origin, None)
    if extra is not None:
        extra = Path(extra)
        if not extra.exists():
            raise UserError(f"registry file {extra} does not exist")
        if not extra.is_file():
            raise UserError(f"registry file {extra} is not a file")
        for name, entry in _read_yaml(extra, ensemble).items():
            base, _, search = raw[name] if name in raw else ({}, "", None)
            base = dict(base)
            if isinstance(entry, dict):
                base.update(entry)
                if "adapter" in entry:  # its module may lie beside the user's file
                    search = extra.resolve().parent
            else:
                base = entry
            raw[name] = (base, extra.name, search)
    methods: dict[str, MethodEntry] = {}
    for name, (entry, origin, search) in raw.items():
        parsed = _parse_entry(name, entry, origin, problems, search)
        if parsed is not None:
            methods[name] = parsed
    known = set(ENSEMBLE_DEFAULTS) - {"members"}
    for key in sorted(set(ensemble["params"]) | set(ensemble["chosen"])):
        if key not in known:
            problems.append(
                f"ensemble: unknown parameter {key!r} (known: {', '.join(sorted(known))})"
            )
    if problems:
        raise UserError("invalid registry:\n  " + "\n  ".join(problems))
    return Registry(methods, ensemble["params"], ensemble["chosen"])

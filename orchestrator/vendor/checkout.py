"""Clone, pin and inspect upstream checkouts with GitPython.

``vendor/<name>`` holds a clone of the method's upstream repository at its pinned commit.
A checkout is usable as the ``upstream`` source only when it is present, at the pin and
clean (no modified or untracked files): the numbers are then the authors' code's numbers.
GitPython is imported only where a checkout is there to look at (`orchestrate methods` and
`vendor status` with no checkouts never pay for it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from orchestrator.errors import UserError
from orchestrator.paths import vendor_dir

if TYPE_CHECKING:
    import git

MIRROR_ENV = "ORCHESTRATOR_VENDOR_MIRROR"
#: The URL schemes ``vendor sync`` clones from (scp-style ``user@host:path`` and local paths
#: are allowed too); everything else (``ext::``, other remote helpers) is refused.
ALLOWED_SCHEMES = ("https", "http", "ssh", "git", "file")
#: ``[user@]host:path``: user and host start with a letter or digit (never an option).
_SCP_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._~+-]*@)?[A-Za-z0-9][A-Za-z0-9.-]*:(?!//)\S")
#: ``git@host:path`` or ``host:path`` (what git takes for scp-style before any slash)
_COLON_BEFORE_SLASH = re.compile(r"^[^/]*:")
#: the user information of ``scheme://user:password@host`` (a token, a password; kept out
#: of messages)
_USERINFO = re.compile(r"(://)[^/\s]*@")


def _shown(url: str) -> str:
    """``url`` for messages: any user information in it replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", str(url))


@dataclass(frozen=True)
class VendorState:
    name: str
    path: Path
    present: bool
    at_pin: bool = False
    clean: bool = False
    head: str | None = None
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.present and self.at_pin and self.clean


def checkout_state(name: str, commit: str | None, root: Path | None = None) -> VendorState:
    """Whether ``<root>/<name>`` exists, is at ``commit`` and is unmodified."""
    return checkout_state_at((root or vendor_dir()) / name, commit)


def checkout_state_at(path: Path, commit: str | None = None) -> VendorState:
    """Whether the checkout at ``path`` exists, is at ``commit`` and is unmodified; its
    actual HEAD either way (what results are tagged with)."""
    path = Path(path)
    name = path.name
    if not (path / ".git").exists():
        return VendorState(name, path, False, problem=f"no checkout at {path}")
    import git

    try:
        repo = git.Repo(path)
        head = repo.head.commit.hexsha
        dirty = repo.is_dirty(untracked_files=True)
    except (git.GitError, ValueError) as exc:
        return VendorState(name, path, True, problem=f"not a usable git checkout ({exc})")
    at_pin = commit is not None and head == commit
    problem = None
    if commit is None:
        at_pin, problem = True, ("modified or untracked files" if dirty else None)
    elif not at_pin:
        problem = f"HEAD {head[:12]} is not the pinned commit {str(commit)[:12]}"
    elif dirty:
        problem = "modified or untracked files (the upstream code must stay unmodified)"
    return VendorState(name, path, True, at_pin, not dirty, head, problem)


def owner_name(url: str) -> tuple[str, str]:
    """``("owner", "name")`` of a repository URL (https, ssh, file)."""
    path = urlparse(url).path if "://" in url else url.split(":", 1)[-1]
    parts = [p for p in path.rstrip("/").split("/") if p]
    if len(parts) < 2:
        raise UserError(f"cannot tell owner/name from repository URL {url!r}")
    return parts[-2], parts[-1].removesuffix(".git")


def check_url(url: str, what: str = "URL") -> str:
    """``url`` if git may be pointed at it, else a UserError ("refusing URL ...").

    Allowed: ``https://``, ``http://``, ``ssh://``, ``git://`` and ``file://`` URLs,
    scp-style ``user@host:path`` and local paths. Refused before any git call: remote
    helpers (``ext::<command>``, any ``<transport>::``), other schemes, anything that starts
    with ``-`` (it would be read as an option such as ``--upload-pack``/``-u``) and control
    characters.
    """
    url = os.fspath(url) if isinstance(url, os.PathLike) else url
    why = None
    if not isinstance(url, str) or not url.strip():
        why = "it is empty or not a string"
    elif any(ord(c) < 32 or ord(c) == 127 for c in url):
        why = "it contains control characters"
    elif url.lstrip().startswith("-"):
        why = "it starts with '-' (git would read it as an option)"
    elif "::" in url:
        why = "remote helpers (<transport>::<address>, e.g. ext::) are not allowed"
    elif "://" in url:
        try:
            parsed = urlparse(url)
            parsed.hostname  # noqa: B018 - parses the host (ValueError on a bad one)
        except ValueError as exc:
            raise UserError(f"refusing {what} {_shown(url)!r}: {exc}") from exc
        scheme = parsed.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            why = f"scheme {scheme or url.split('://', 1)[0]!r} is not one of " + ", ".join(
                ALLOWED_SCHEMES
            )
        elif (parsed.hostname or "").startswith("-") or parsed.netloc.startswith("-"):
            why = "its host starts with '-'"
    elif _COLON_BEFORE_SLASH.match(url) and not _SCP_RE.match(url):
        why = "it is neither a URL, user@host:path nor a local path"
    if why:
        raise UserError(f"refusing {what} {_shown(url)!r}: {why}")
    return url


def git_env() -> dict[str, str]:
    """Environment for the git processes: only the allowed transports (submodules, redirects
    and helpers included) and ``protocol.ext.allow=never``, whatever the user's config says."""
    n = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    return {
        "GIT_ALLOW_PROTOCOL": ":".join(ALLOWED_SCHEMES),
        f"GIT_CONFIG_KEY_{n}": "protocol.ext.allow",
        f"GIT_CONFIG_VALUE_{n}": "never",
        "GIT_CONFIG_COUNT": str(n + 1),
    }


def _git_failure(name: str, what: str, source: str, exc: git.GitError) -> UserError:
    """One line out of a GitPython error (the git message, not its command line)."""
    import git

    if isinstance(exc, git.GitCommandError):
        text = str(exc.stderr or "").replace("stderr:", "").strip().strip("'\"").strip()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        detail = (fatal or lines or [f"exit code {exc.status}"])[0]
    else:
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return UserError(f"{name}: git {what} from {_shown(source)} failed: {_shown(detail)}")


def mirror_source(url: str, mirror: str | None) -> str:
    """Where to clone ``url`` from: the mirror's ``<owner>/<name>[.git]`` if a mirror is set."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    check_url(mirror, "mirror")
    owner, name = owner_name(url)
    if "://" in mirror and not mirror.startswith("file://"):
        return f"{mirror.rstrip('/')}/{owner}/{name}.git"
    base = Path(mirror.removeprefix("file://"))
    for cand in (base / owner / name, base / owner / f"{name}.git"):
        if cand.exists():
            return str(cand)
    raise UserError(f"mirror {base} has neither {owner}/{name} nor {owner}/{name}.git")


def _missing_blobs(repo: git.Repo, commit: str) -> list[str]:
    """Paths of the pinned tree whose blobs the clone lacks (partial mirrors, LFS-less)."""
    missing = []
    for item in repo.commit(commit).tree.traverse():
        if item.type == "blob":
            try:
                repo.odb.info(item.binsha)
            except Exception:  # noqa: BLE001 - gitdb raises BadObject
                missing.append(item.path)
    return missing


def sync_one(
    name: str, url: str, commit: str, mirror: str | None = None, root: Path | None = None
) -> str:
    """Clone (or fetch) and check out the pin; idempotent. Returns what was done.

    ``url``, the mirror and the resulting source are checked (:func:`check_url`) before git
    runs; git failures (unreachable or missing repository, ...) come back as one-line
    UserErrors.
    """
    path = (root or vendor_dir()) / name
    check_url(url)
    source = check_url(mirror_source(url, mirror))
    state = checkout_state(name, commit, root)
    if state.usable:
        return f"{name}: already at {commit[:12]}, clean"
    if state.present and state.at_pin and not state.clean:
        raise UserError(
            f"{name}: {path} is at the pin but modified; not touching it "
            f"(restore it with `git -C {path} checkout .` or delete the folder)"
        )
    import git

    env = git_env()
    step = "fetch" if state.present else "clone"
    try:
        if state.present:
            repo = git.Repo(path)
            repo.git.update_environment(**env)
            if repo.is_dirty(untracked_files=True):
                raise UserError(f"{name}: {path} has local changes; not touching it")
            repo.git.fetch("--", source)  # "--": the source is never an option
            action = "fetched"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.clone_from(source, path, env=env, no_checkout=True)
            action = "cloned"
        try:
            repo.commit(commit)
        except (ValueError, git.BadName) as exc:
            raise UserError(
                f"{name}: pinned commit {commit} not found in {_shown(source)}"
            ) from exc
        step = "checkout"
        missing = _missing_blobs(repo, commit)
        if missing:  # a mirror without some large files: leave them out of the work tree
            repo.git.sparse_checkout("set", "--no-cone", "/*", *[f"!/{p}" for p in missing])
        repo.git.checkout("--detach", commit)
    except git.GitError as exc:
        raise _git_failure(name, step, source, exc) from exc
    note = f" ({len(missing)} file(s) absent from the source left out)" if missing else ""
    return f"{name}: {action} from {_shown(source)}, at {commit[:12]}{note}"


def sync(entries, mirror: str | None = None, root: Path | None = None) -> list[str]:
    """Sync every registry entry that has an upstream repository.

    Every entry is checked first (its checkout folder strictly inside the vendor root, its
    URL and the mirror allowed), so a bad entry stops the sync before git runs for any.
    """
    root = root or vendor_dir()
    todo = [e for e in entries if e.repo and e.commit]
    targets = []
    for e in todo:
        target = inside_vendor(entry_dir(e, root), root, e.name)
        check_url(e.repo)
        check_url(mirror_source(e.repo, mirror))
        targets.append(target)
    return [
        sync_one(target.name, e.repo, e.commit, mirror, target.parent)
        for e, target in zip(todo, targets, strict=True)
    ]


def inside_vendor(path: Path, root: Path, name: str = "") -> Path:
    """``path`` if it lies strictly inside ``root`` (links resolved), else a UserError."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    if resolved == base or base not in resolved.parents:
        raise UserError(
            f"{name or path}: refusing checkout folder {path}: it resolves to {resolved}, "
            f"outside the vendor directory {base}"
        )
    return Path(path)


def entry_dir(entry, root: Path | None = None) -> Path:
    """The checkout folder of a registry entry (its ``checkout`` key, default its name)."""
    return (root or vendor_dir()) / (getattr(entry, "checkout", None) or entry.name)


def resolve_source(
    entry, cls, requested: str, allow_dirty: bool = False, root: Path | None = None
) -> tuple[str, VendorState | None]:
    """``auto`` -> upstream if implemented and the checkout is usable, else native.

    An explicit ``upstream`` with an unusable checkout is an error, unless ``allow_dirty``
    (then the run is tagged vendor_dirty=true).
    """
    if requested not in ("auto", "upstream", "native"):
        raise UserError(f"source must be auto, upstream or native, got {requested!r}")
    has_upstream = "upstream" in cls.sources and entry.repo
    state = checkout_state_at(entry_dir(entry, root), entry.commit) if has_upstream else None
    if requested == "native":
        if "native" not in cls.sources:
            raise UserError(f"{entry.name}: no native source (it has: {', '.join(cls.sources)})")
        return "native", None
    if requested == "auto":
        if state is not None and state.usable:
            return "upstream", state
        if "native" in cls.sources:
            return "native", None
        why = state.problem if state else "no upstream source"
        raise UserError(
            f"{entry.name}: upstream only, and {why}; run `orchestrate vendor sync {entry.name}`"
        )
    if state is None:
        raise UserError(f"{entry.name}: has no upstream source")
    if state.usable or (allow_dirty and state.present):
        return "upstream", state
    raise UserError(
        f"{entry.name}: refusing the upstream checkout: {state.problem} "
        f"(orchestrate vendor sync {entry.name}; or --allow-dirty to run it anyway, "
        "tagged vendor_dirty=true)"
    )

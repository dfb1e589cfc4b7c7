"""
Checks that every bundle config runs first, so that a wrong command line stops before any work, with a message that
names the key, file or value at fault.

- :func:`data_path` is the default of a config's dataset path (``data_root``, ``dataset_dir``): the folder named by
  the environment variable ``SYNPRIV_DATA`` (the data root of the whole project, as for the pipeline and the tests),
  else an error naming the override to pass. A config that is given its datalists never evaluates it, so never needs
  the path.
- :func:`check_cli_overrides` is the first entry of every config's ``initialize``. In a ``python -m monai.bundle run``
  process (and only there) it refuses an override key that is no id of the merged config, with close matches
  (``--max_epoch`` -> ``--max_epochs``), and a dataset folder given on the command line that does not exist. It
  installs :func:`excepthook`, which prints the root cause of an error first and last, instead of MONAI's
  ``Failed to evaluate ConfigExpression`` wrapper.
- :func:`check_override_keys` is the same key check for Python callers that build their own overrides (the pipeline's
  profile sections), on config files merged as ``monai.bundle`` merges them.

Example of a config using them::

    "data_root": {"_target_": "monai_synpriv.bundle_checks.data_path", "key": "data_root"},
    "initialize": [
        {"_target_": "monai_synpriv.bundle_checks.check_cli_overrides", "folders": ["data_root"]},
        ...
    ]

Both are ``_target_`` components, so that a config needs no import line for them.
"""

from __future__ import annotations

import difflib
import inspect
import os
import pydoc
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser
from monai.bundle.reference_resolver import ReferenceResolver

__all__ = [
    "DATA_ENV",
    "check_cli_overrides",
    "check_override_keys",
    "cli_run_arguments",
    "data_path",
    "excepthook",
    "fault_message",
    "merged_config",
    "parse_fire_arguments",
    "require_data",
    "root_cause",
    "unknown_override_keys",
]

#: environment variable naming the data root (the folder holding the public sets; docs/data.md)
DATA_ENV = "SYNPRIV_DATA"

#: ``monai.bundle`` commands whose keyword arguments are config overrides
_RUN_COMMANDS = ("run", "run_workflow")
#: keys of a ``_target_`` component that are no argument of the target
_RESERVED_KEYS = ("_target_", "_disabled_", "_requires_", "_desc_", "_mode_")
#: how MONAI's config items wrap the error of an expression or a component
_WRAPPER_PREFIXES = ("Failed to evaluate", "Failed to instantiate")

_checked = False  # the command line is checked once per process (a nested workflow must not check it again)
_previous_excepthook = None


def _unset_message(key: str, example: str, env: str, alternatives: Sequence[str] = ()) -> str:
    given = "".join(f" or --{a} <datalist>" for a in alternatives)
    return (
        f"config key '{key}' is not set: pass --{key} {example}{given} (in Python: the override {{'{key}': ...}}), "
        f"or set the environment variable {env} to the folder holding the public data sets (monai_synpriv's "
        "docs/data.md)."
    )


def data_path(key: str, subdir: str = "", env: str = DATA_ENV, required: bool = True) -> str | None:
    """Default of a config's dataset path ``key``: ``$SYNPRIV_DATA/<subdir>``; raises when it is not set or absent.

    A config evaluates it only when it reads its default dataset, so a run given its datalists needs neither the
    variable nor the override.

    Inference configs pass ``required=False``: the path is then ``None`` when neither the override nor the variable
    is given, so that the workflow can be built and its properties checked without data (model-zoo's CI does that),
    and the config's ``run`` starts with :func:`require_data`, which raises this function's error.

    Args:
        key: the config id whose default this is (named in the error, with the override to pass).
        subdir: folder under the data root (e.g. ``"mri_brain_multicontrast"`` for ``dataset_dir``).
        env: environment variable holding the data root.
        required: raise when the path is not given (else return ``None``).

    Raises:
        ValueError: ``env`` is not set and ``required`` (the message names ``--<key>`` and ``env``).
        FileNotFoundError: ``env`` is set but ``$env/subdir`` is not a folder.
    """
    if _bundle_main():
        _install_excepthook()
    example = f"/path/to/{subdir or 'data'}"
    root = os.environ.get(env, "")
    if not root:
        if not required:
            return None
        raise ValueError(_unset_message(key, example, env))
    path = Path(root) / subdir if subdir else Path(root)
    if not path.is_dir():
        raise FileNotFoundError(
            f"config key '{key}': {path} is not a folder ({env}={root}); pass --{key} {example}, or set {env} to "
            "the folder holding the public data sets (monai_synpriv's docs/data.md)."
        )
    return str(path)


def require_data(value: Any, key: str, alternatives: Sequence[str] = (), subdir: str = "", env: str = DATA_ENV) -> Any:
    """First entry of an inference config's ``run``: stop, naming the override to pass, when the input is missing.

    Args:
        value: what the run would read (a datalist path or dict, a list of items); ``None`` when no data was given.
        key: the dataset path override that would supply it (``dataset_dir``).
        alternatives: other overrides that would (``input_datalist``).
        subdir: the data root's sub-folder, for the example path in the message.
        env: environment variable holding the data root.

    Returns:
        ``value``, unchanged.

    Raises:
        ValueError: ``value`` is ``None``.
    """
    if value is None:
        raise ValueError(_unset_message(key, f"/path/to/{subdir or 'data'}", env, alternatives))
    return value


# ---------------------------------------------------------------------------------------------- the command line
def _is_flag(argument: str) -> bool:
    """fire's ``_IsFlag``: ``--name``, ``-n``, ``-name`` (not a negative number)."""
    return argument.startswith("--") or (len(argument) > 1 and argument[0] == "-" and argument[1].isalpha())


def _parse_value(text: str) -> Any:
    try:
        from fire.parser import DefaultParseValue
    except ImportError:  # fire parses the command line of monai.bundle; without it there is none to parse
        import ast

        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    return DefaultParseValue(text)


def parse_fire_arguments(args: Sequence[str]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """The keyword and positional arguments that ``fire`` passes to a function with ``**kwargs`` (as
    ``monai.bundle run``), read the way fire 0.7 reads them.

    ``--key value``, ``--key=value``, ``--key`` alone (``True``), ``--nokey`` alone (``key=False``), ``-`` in a key
    read as ``_``; the arguments after a lone ``--`` are fire's own.

    Args:
        args: the command line after the command name (``sys.argv[2:]`` of ``python -m monai.bundle run ...``).

    Returns:
        ``(keywords, positionals, spelled)``: the keyword values (parsed as fire parses them), the positional
        arguments, and for each keyword the argument that set it (``"--nonormalize"`` for ``normalize``).
    """
    args = list(args)
    if "--" in args:
        args = args[: len(args) - 1 - args[::-1].index("--")]
    keywords: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    positionals: list[str] = []
    skip = False
    for index, argument in enumerate(args):
        if skip:
            skip = False
            continue
        if not _is_flag(argument):
            positionals.append(argument)
            continue
        stripped = argument.lstrip("-")
        has_equals = "=" in argument
        key, value = stripped.split("=", 1) if has_equals else (stripped, None)
        key = key.replace("-", "_")
        bool_syntax = not has_equals and (index + 1 == len(args) or _is_flag(args[index + 1]))
        if has_equals:
            parsed: Any = _parse_value(value)  # type: ignore[arg-type]
        elif bool_syntax:
            if key.startswith("no"):  # fire: a lone --noX sets X to False (also for --normalize -> rmalize)
                key, parsed = key[2:], False
            else:
                parsed = True
        else:
            parsed = _parse_value(args[index + 1])
            skip = True
        keywords[key] = parsed
        spelled[key] = argument
    return keywords, positionals, spelled


def _bundle_main() -> bool:
    """Whether this process is ``python -m monai.bundle`` (also under ``torchrun -m``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", None) == "monai.bundle.__main__":
        return True
    parts = Path(sys.argv[0]).parts if sys.argv and sys.argv[0] else ()
    return tuple(parts[-3:]) == ("monai", "bundle", "__main__.py")


def _run_parameters() -> tuple[list[str], set[str]]:
    """``monai.bundle.run``'s named parameters in order, and every keyword that is no override (those of ``run``,
    ``run_workflow``, ``create_workflow`` and ``ConfigWorkflow``)."""
    from monai.bundle import ConfigWorkflow, create_workflow, run, run_workflow

    def named(fn: Any) -> list[str]:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds and p.name != "self"]

    order = named(run)
    return order, set(order) | set(named(run_workflow)) | set(named(create_workflow)) | set(named(ConfigWorkflow))


def cli_run_arguments(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The arguments of ``python -m monai.bundle run ...`` (``run_workflow`` too), as ``run`` receives them.

    Args:
        argv: a command line to read instead of ``sys.argv`` (then it is read whatever the process is).

    Returns:
        ``None`` when this process is no ``monai.bundle run`` (a config parsed from Python, the pipeline, a test);
        else ``{"command", "arguments" (the named parameters of run), "overrides" (key -> value), "spelled"
        (key -> the argument that set it), "args_file_keys"}``, ``args_file``'s content merged under the command
        line as ``monai.bundle`` merges them.
    """
    if argv is None:
        if not _bundle_main():
            return None
        argv = sys.argv
    if len(argv) < 2 or argv[1] not in _RUN_COMMANDS:
        return None
    keywords, positionals, spelled = parse_fire_arguments(argv[2:])
    order, not_overrides = _run_parameters()
    if argv[1] == "run":  # fire fills the named parameters not given by keyword from the positional arguments
        for name in (n for n in order if n not in keywords):
            if not positionals:
                break
            keywords[name] = _parse_value(positionals.pop(0))
    elif positionals:
        keywords.setdefault("workflow_name", positionals.pop(0))
    from_file: dict[str, Any] = {}
    if keywords.get("args_file"):
        from_file = dict(ConfigParser.load_config_file(str(keywords["args_file"])))
    merged = {**from_file, **{k: v for k, v in keywords.items() if v is not None}}
    arguments = {k: merged.get(k) for k in sorted(not_overrides)}
    overrides = {k.lstrip("+"): v for k, v in merged.items() if k not in not_overrides}
    return {
        "command": argv[1],
        "arguments": arguments,
        "overrides": overrides,
        "spelled": spelled,
        "args_file_keys": sorted(k for k in from_file if k not in not_overrides),
    }


# ---------------------------------------------------------------------------------------------- the merged config
PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]


def _files(paths: PathOrPaths) -> list[str]:
    """One path, a list of paths, or MONAI's comma-separated form, as a list of strings."""
    if isinstance(paths, (str, os.PathLike)):
        text = str(paths)
        return text.split(",") if "," in text and not Path(text).is_file() else [text]
    return [str(p) for p in paths]


def merged_config(
    config_file: PathOrPaths,
    meta_file: PathOrPaths | None = None,
    tracking: str | Mapping | None = None,
) -> ConfigParser:
    """The config ``monai.bundle run`` builds from these files, before its overrides: ``config_file`` merged in order,
    the metadata under ``_meta_`` (default ``<config folder>/metadata.json``) and the top-level settings that the
    ``tracking`` patch adds (``tracking_uri``, ``experiment_name``, ...)."""
    from monai.bundle.utils import DEFAULT_EXP_MGMT_SETTINGS

    files = _files(config_file)
    parser = ConfigParser()
    parser.read_config(f=files)
    metas = _files(meta_file) if meta_file is not None else [str(Path(files[0]).parent / "metadata.json")]
    if all(Path(m).is_file() for m in metas):  # as ConfigWorkflow: no metadata when a file is missing
        parser.read_meta(f=metas)
    if tracking is not None:
        if isinstance(tracking, str) and tracking in DEFAULT_EXP_MGMT_SETTINGS:
            settings = DEFAULT_EXP_MGMT_SETTINGS[tracking]
        else:
            settings = ConfigParser.load_config_files(tracking)  # type: ignore[arg-type]
        for k, v in settings.get("configs", {}).items():
            if k not in settings.get("handlers_id", {}) and k not in parser:
                parser[k] = v
    return parser


def _all_ids(config: Any, prefix: str = "") -> list[str]:
    ids: list[str] = []
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else ()
    for k, v in items:
        sub = f"{prefix}{ReferenceResolver.sep}{k}" if prefix else str(k)
        ids.append(sub)
        ids.extend(_all_ids(v, sub))
    return ids


def _target_parameters(target: Any) -> set[str] | None:
    """The keyword arguments a ``_target_`` accepts; ``None`` when unknown (not a plain name, not found, ``**kw``)."""
    if not isinstance(target, str) or target.startswith(("$", "@", "%")):
        return None
    try:
        from monai.bundle.config_item import ComponentLocator

        module = ComponentLocator().get_component_module_name(target)
        if isinstance(module, list):
            module = module[0]
        obj = pydoc.locate(f"{module}.{target}" if module else target)
        signature = inspect.signature(obj) if obj is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError, ImportError, pydoc.ErrorDuringImport):
        return None
    if signature is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return {p.name for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def unknown_override_keys(config: ConfigParser | Mapping, keys: Iterable[str]) -> dict[str, list[str]]:
    """The override keys that are no id of ``config``, each with its close matches (best first).

    A key is an id when ``config`` holds it (nested ids joined by ``#`` or ``::``, list items by index), or when it
    names an argument of a ``_target_`` component that the target accepts (``network_def#dropout``: MONAI passes it
    on; checked against the target's signature when it can be found). A leading ``+`` (MONAI's merge key) is ignored.

    Args:
        config: the merged config (:func:`merged_config`), or its content.
        keys: override keys as given (``max_epochs``, ``train#trainer#max_epochs``).
    """
    parser = config if isinstance(config, ConfigParser) else ConfigParser(dict(config))
    sep = ReferenceResolver.sep
    ids = _all_ids(parser.get())
    unknown: dict[str, list[str]] = {}
    for key in keys:
        norm = ReferenceResolver.normalize_id(key.lstrip("+"))
        if norm in parser:
            continue
        parent, last = ReferenceResolver.split_id(norm, last=True) if sep in norm else ("", norm)
        if parent and parent in parser:  # a new item in an existing dict: only a component argument can be one
            node = parser[parent]
            names = [str(k) for k in (node if isinstance(node, dict) else range(len(node)))] if isinstance(
                node, (dict, list)
            ) else []
            if isinstance(node, dict) and "_target_" in node:
                accepted = _target_parameters(node["_target_"])
                if accepted is None or last in accepted or last in _RESERVED_KEYS:
                    continue
                names += sorted(accepted)
            names = list(dict.fromkeys(n for n in names if n not in _RESERVED_KEYS))
            matches = [f"{parent}{sep}{m}" for m in difflib.get_close_matches(last, names, n=3, cutoff=0.6)]
        else:  # same nesting depth (top-level ids for a top-level key)
            candidates = [i for i in ids if i.count(sep) == norm.count(sep)]
            matches = difflib.get_close_matches(norm, candidates, n=3, cutoff=0.6)
        shown = "::" if "::" in key else "#"
        unknown[key] = [m.replace(sep, shown) for m in matches]
    return unknown


def _describe(
    unknown: Mapping[str, list[str]],
    spelled: Mapping[str, str] | None = None,
    dash: str = "--",
    hints: Mapping[str, str] | None = None,
) -> str:
    parts = []
    for key, matches in unknown.items():
        text = f"{dash}{key}"
        given = (spelled or {}).get(key, "")
        if given.lstrip("-").replace("-", "_") == f"no{key}":
            text += f" (fire reads the bare flag {given} as {key}=False: give it a value, e.g. {given} True)"
        elif hints and key in hints:
            text += f" ({hints[key]})"
        elif matches:
            text += " (did you mean " + " or ".join(f"{dash}{m}" for m in matches) + "?)"
        parts.append(text)
    return ", ".join(parts)


def check_override_keys(
    config_file: PathOrPaths,
    keys: Iterable[str],
    meta_file: PathOrPaths | None = None,
    tracking: str | Mapping | None = None,
    origin: str = "overrides",
) -> None:
    """Raise when an override key is no id of the merged ``config_file`` (see :func:`unknown_override_keys`).

    Args:
        config_file: the config file(s), merged in order as ``monai.bundle run`` merges them.
        keys: the override keys.
        meta_file: the metadata file(s) (default ``<config folder>/metadata.json``): ``_meta_#...`` ids.
        tracking: the ``tracking`` argument of the run (its settings add ids such as ``tracking_uri``).
        origin: where the keys come from, for the message (e.g. ``"profile 'quick' section 'ssl_train'"``).

    Raises:
        ValueError: naming each unknown key with its close matches, and the config files.
    """
    unknown = unknown_override_keys(merged_config(config_file, meta_file, tracking), keys)
    if unknown:
        files = ", ".join(_files(config_file))
        raise ValueError(
            f"{origin}: {_describe(unknown, dash='')}: not an id of {files}; an override must name an id of the "
            "config (nested ids joined by '#')."
        )


# ---------------------------------------------------------------------------------------------- in initialize
def check_cli_overrides(folders: Sequence[str] = (), argv: Sequence[str] | None = None) -> None:
    """The first entry of a bundle config's ``initialize``: in a ``python -m monai.bundle run`` process, refuse an
    override key that is no id of the merged config and a dataset folder override that does not exist, before any
    work. Elsewhere (a config parsed or run from Python) it does nothing. Installs :func:`excepthook`.

    Args:
        folders: config ids that hold input folders (``data_root``): given on the command line, they must exist.
        argv: a command line to check instead of ``sys.argv`` (tests).

    Raises:
        ValueError: unknown override keys (each named with its close matches and the config files).
        FileNotFoundError: a ``folders`` override that is not a folder.
    """
    global _checked
    if argv is None and _checked:
        return
    cli = cli_run_arguments(argv)
    if cli is None:
        return
    if argv is None:
        _checked = True
        _install_excepthook()
    arguments, overrides = cli["arguments"], cli["overrides"]
    wf = arguments.get("workflow_name")
    config_file = arguments.get("config_file")
    if config_file is None or (wf is not None and str(wf) != "ConfigWorkflow"):
        return  # another workflow class takes its own arguments
    unknown = unknown_override_keys(
        merged_config(config_file, arguments.get("meta_file"), arguments.get("tracking")), overrides
    )
    if unknown:
        from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

        files = ", ".join(_files(config_file))
        from_file = [k for k in unknown if k in cli["args_file_keys"] and k not in cli["spelled"]]
        where = f" (from --args_file {arguments['args_file']}: {', '.join(from_file)})" if from_file else ""
        tracking_ids = DEFAULT_MLFLOW_SETTINGS["configs"] if arguments.get("tracking") is None else {}
        hints = {k: "an id only with --tracking, e.g. --tracking mlflow" for k in unknown if k in tracking_ids}
        raise ValueError(
            f"{_describe(unknown, cli['spelled'], hints=hints)}: not an id of --config_file {files}{where}; MONAI "
            "would add it unused. An override must name an id of the config (nested ids joined by '#'); nothing was "
            "run."
        )
    for key in folders:
        value = overrides.get(key)
        if isinstance(value, (str, os.PathLike)) and not str(value).startswith(("$", "@", "%")):
            if not Path(value).is_dir():
                raise FileNotFoundError(f"--{key} {value}: no such folder; pass the folder holding the data set.")


# ---------------------------------------------------------------------------------------------- the error surface
def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of ``exc``'s ``raise ... from`` chain (the one MONAI's wrappers hide)."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def fault_message(exc: BaseException) -> str | None:
    """``"<Type>: <message>"`` (one line) of ``exc``'s root cause when MONAI's config wrappers (``Failed to
    evaluate ...``, ``Failed to instantiate ...``) hide it, else ``None`` (the traceback already ends with it)."""
    chain, e = [exc], exc
    while e.__cause__ is not None and e.__cause__ not in chain:
        e = e.__cause__
        chain.append(e)
    if len(chain) < 2 or not any(
        isinstance(x, RuntimeError) and str(x).startswith(_WRAPPER_PREFIXES) for x in chain[:-1]
    ):
        return None
    cause = chain[-1]
    text = " ".join(line.strip() for line in str(cause).splitlines() if line.strip())
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """``sys.excepthook`` of a ``monai.bundle run`` process: the usual traceback, preceded and followed by one line
    ``ERROR: <root cause>`` when MONAI's wrappers hide the cause (other errors are printed as usual)."""
    line = fault_message(exc) if isinstance(exc, Exception) else None
    if line:
        print(f"ERROR: {line}", file=sys.stderr, flush=True)
    (_previous_excepthook or sys.__excepthook__)(exc_type, exc, tb)
    if line:
        print(f"ERROR: {line}", file=sys.stderr, flush=True)


def _install_excepthook() -> None:
    global _previous_excepthook
    if sys.excepthook is not excepthook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = excepthook

"""Redaction: secrets in a job's data are masked before anything is stored, shown or logged.

The one home of the rule ``JOBSITE["REDACT"]`` states (its shape and defaults are in
``conf.DEFAULTS``). Whatever leaves a job for the events stream, and so the database, the
pages, the logs and ``/metrics``, goes through one of these first:

- ``redact_args(func, args)`` / ``redact_kwargs(func, kwargs)``: the arguments with every
  secret replaced by ``MASK``: a keyword argument, a positional argument (by its parameter
  name, when the function can be imported) or a dict key at any depth whose name matches
  ``names``; the positions and keywords the function's own entry in ``functions`` hides.
- ``redact_result(func, value)``: a return value, the same way (or all of it, when the
  function's entry says ``"result": True``).
- ``redact_text(func, text, secrets=...)``: free text (an exception message, a traceback, a
  log line, a progress message, a repr): ``name=value`` / ``name: value`` for the names,
  every regex of ``patterns`` (bearer tokens, URL passwords, well-known key formats, the
  function's own patterns), Luhn-valid card numbers, and the literal ``secrets``.
- ``hidden_values(func, args, kwargs)``: the secrets a call carries, as text, for
  ``redact_text``: a message that repeats a hidden argument hides it too.
- ``call_of(job)`` (any RQ job) / ``call_for(func, args, kwargs)``: all of the above for
  one call, computed once: ``.args``, ``.kwargs``, ``.text(text)``, ``.result(value)``,
  ``.call_string()``. What records RQ's own data (a result, ``exc_info``) uses these too.
- ``redacting_logs(logger, call)``: what a logger emits about a call, redacted.
- ``setting_errors(value)``: what is wrong with a ``JOBSITE["REDACT"]`` (``manage.py check``).

The job itself still gets its real arguments: only copies are redacted. A malformed
setting never stops a worker: its bad entries are skipped (and reported by the check) and
the rest applies. Anything that still goes wrong while redacting hides the whole value.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .conf import DEFAULTS, setting

MASK = "[redacted]"
FAILED = "[redacted: could not be checked for secrets]"

_KEYS = frozenset({"names", "patterns", "card_numbers", "functions", "defaults"})
_FUNCTION_KEYS = frozenset({"args", "kwargs", "result", "patterns"})
_MAX_DEPTH = 32
_MIN_SECRET = 4  # shorter hidden values are masked where they stand, not searched for in text
# A value after "name=" / "name: ": quoted, or up to a separator. It never starts with "[",
# so an already masked value is left as it is.
_VALUE = r"""(?:(?P<q>['"])(?P<qv>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<value>[^\s'",;&)}\]\[=][^\s'",;&)}\](\[=]*))"""
# "name=value", "name: value", "'name': 'value'": the value is in a lookahead, so a quoted
# value is searched too ("note='password=x'").
_KEY_VALUE = re.compile(rf"""(?<![\w.-])(?P<key>[\w.-]+)['"]?\s*[:=]\s*(?={_VALUE})""")
_CARD = re.compile(r"(?<![\w.])[2-6](?:[ -]?\d){12,18}(?![\w])")

log = logging.getLogger(__name__)


# --- the setting ------------------------------------------------------------------------------


def _regex_error(where: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{where} must be a non-empty regex string, not {value!r}"
    try:
        re.compile(value)
    except re.error as exc:
        return f"{where} {value!r} is not a valid regex: {exc}"
    return None


def _function_errors(name: Any, entry: Any) -> list[str]:
    where = f'JOBSITE["REDACT"]["functions"][{name!r}]'
    if not isinstance(name, str) or "." not in name:
        return [f"{where}: the key must be a function's dotted path like 'shop.jobs.charge'"]
    if entry == "all":
        return []
    if not isinstance(entry, dict):
        return [f'{where} must be "all" or a dict with "args", "kwargs", "result", "patterns"; not {entry!r}']
    problems = [f"{where} has unknown key {key!r}" for key in entry if key not in _FUNCTION_KEYS]
    args = entry.get("args", [])
    if args != "all" and not (
        isinstance(args, list) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in args)
    ):
        problems.append(f'{where}["args"] must be "all" or a list of positions (0, 1, ...), not {args!r}')
    kwargs = entry.get("kwargs", [])
    if kwargs != "all" and not (isinstance(kwargs, list) and all(isinstance(k, str) for k in kwargs)):
        problems.append(f'{where}["kwargs"] must be "all" or a list of keyword names, not {kwargs!r}')
    if not isinstance(entry.get("result", False), bool):
        problems.append(f'{where}["result"] must be True or False, not {entry["result"]!r}')
    patterns = entry.get("patterns", [])
    if not isinstance(patterns, list):
        problems.append(f'{where}["patterns"] must be a list of regexes, not {patterns!r}')
    else:
        problems += [p for i, x in enumerate(patterns) if (p := _regex_error(f'{where}["patterns"][{i}]', x))]
    return problems


def setting_errors(value: Any) -> list[str]:
    """What is wrong with ``value`` as ``JOBSITE["REDACT"]``, each with what to fix."""
    if not isinstance(value, dict):
        return [f'JOBSITE["REDACT"] must be a dict (keys: {", ".join(sorted(_KEYS))}), not {value!r}']
    known = ", ".join(sorted(_KEYS))
    problems = [f'JOBSITE["REDACT"] has unknown key {key!r}; known: {known}' for key in value if key not in _KEYS]
    for key in ("names", "patterns"):
        entries = value.get(key, [])
        if not isinstance(entries, list):
            problems.append(f'JOBSITE["REDACT"]["{key}"] must be a list of regexes, not {entries!r}')
            continue
        for i, entry in enumerate(entries):
            where = f'JOBSITE["REDACT"]["{key}"][{i}]'
            if problem := _regex_error(where, entry):
                problems.append(problem)
            elif key == "names" and re.compile(entry).groupindex:
                problems.append(f"{where} {entry!r} must not use named groups")
    for key in ("card_numbers", "defaults"):
        if not isinstance(value.get(key, True), bool):
            problems.append(f'JOBSITE["REDACT"]["{key}"] must be True or False, not {value[key]!r}')
    functions = value.get("functions", {})
    if not isinstance(functions, dict):
        problems.append(f'JOBSITE["REDACT"]["functions"] must be a dict of dotted path -> rule, not {functions!r}')
    else:
        for name, entry in functions.items():
            problems += _function_errors(name, entry)
    return problems


@dataclass(frozen=True)
class _FunctionRule:
    args: frozenset[int] | None  # None: all of them
    kwargs: frozenset[str] | None
    result: bool
    patterns: tuple[re.Pattern[str], ...]


_ALL = _FunctionRule(args=None, kwargs=None, result=True, patterns=())
_NONE = _FunctionRule(args=frozenset(), kwargs=frozenset(), result=False, patterns=())


@dataclass(frozen=True)
class _Rules:
    names: re.Pattern[str] | None
    patterns: tuple[re.Pattern[str], ...]
    cards: bool
    functions: dict[str, _FunctionRule]

    def function(self, func: Any) -> _FunctionRule:
        return self.functions.get(_path(func), _NONE) if self.functions else _NONE


def _good_regexes(entries: Any) -> list[str]:
    return [e for e in entries if _regex_error("", e) is None] if isinstance(entries, list) else []


def _compile(value: Any) -> _Rules:
    """The rules of a setting, its bad parts left out."""
    builtin = DEFAULTS["REDACT"]
    if not isinstance(value, dict):
        value = builtin
    extend = value.get("defaults", True) is not False
    names = [n for n in _good_regexes(value.get("names", [])) if not re.compile(n).groupindex]
    patterns = _good_regexes(value.get("patterns", []))
    if extend and value is not builtin:
        names, patterns = builtin["names"] + names, builtin["patterns"] + patterns
    name_regex = "|".join(f"(?:{n})" for n in names)
    functions: dict[str, _FunctionRule] = {}
    raw = value.get("functions", {})
    for path, entry in raw.items() if isinstance(raw, dict) else ():
        if entry == "all" or _function_errors(path, entry):
            # "all", or a rule that cannot be read: it meant to hide something, so hide it all.
            functions[path] = _ALL
            continue
        args, kwargs = entry.get("args", []), entry.get("kwargs", [])
        functions[path] = _FunctionRule(
            args=None if args == "all" else frozenset(args),
            kwargs=None if kwargs == "all" else frozenset(kwargs),
            result=entry.get("result", False),
            patterns=tuple(re.compile(p) for p in entry.get("patterns", [])),
        )
    return _Rules(
        names=re.compile(name_regex, re.IGNORECASE) if names else None,
        patterns=tuple(re.compile(p) for p in patterns),
        cards=value.get("card_numbers", True) is not False,
        functions=functions,
    )


# (the setting object, its repr, its rules): settings are replaced, not changed in place
# (override_settings, the settings fixture), so the same object means the same rules.
_CACHE: tuple[Any, str, _Rules] | None = None


def _rules() -> _Rules:
    """The rules in force, compiled once per distinct setting (tests and reloads change it)."""
    global _CACHE
    value = setting("REDACT")
    cached = _CACHE
    if cached is not None and cached[0] is value:  # the same setting object: no repr to compare
        return cached[2]
    key = repr(value)
    if cached is None or cached[1] != key:
        problems = setting_errors(value)
        if problems:
            log.warning("JOBSITE['REDACT'] has problems; their entries are skipped: %s", "; ".join(problems))
        cached = (value, key, _compile(value))
    else:
        cached = (value, key, cached[2])
    _CACHE = cached
    return cached[2]


# --- values -------------------------------------------------------------------------------------


def _path(func: Any) -> str:
    if isinstance(func, str):
        return func
    if func is None:
        return ""
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"


@lru_cache(maxsize=1024)
def _imported_parameters(path: str) -> tuple[str, ...]:
    module, _, name = path.rpartition(".")
    try:
        return _parameters(getattr(importlib.import_module(module), name))
    except Exception:  # not importable here: hide by position only
        return ()


def _parameters(func: Any) -> tuple[str, ...]:
    """The names of ``func``'s positional parameters, in order."""
    if isinstance(func, str):
        return _imported_parameters(func) if "." in func and not func.startswith("<") else ()
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in parameters if p.kind in kinds)


def _secret_name(rules: _Rules, name: Any) -> bool:
    return isinstance(name, str) and rules.names is not None and rules.names.search(name) is not None


def _walk(rules: _Rules, value: Any, depth: int = 0) -> Any:
    """``value`` with every entry under a secret name masked, at any depth (a copy; the
    values themselves are left alone: their repr goes through ``redact_text``)."""
    if depth > _MAX_DEPTH or isinstance(value, (str, bytes, int, float)):
        return value
    if isinstance(value, Mapping):
        items = {k: MASK if _secret_name(rules, k) else _walk(rules, v, depth + 1) for k, v in value.items()}
        return items if type(value) is dict else _rebuild(value, items)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: its fields have names
        named = zip(value._fields, value, strict=False)
        fields = [MASK if _secret_name(rules, n) else _walk(rules, v, depth + 1) for n, v in named]
        return _rebuild(value, fields, star=True)
    if isinstance(value, (list, tuple, set, frozenset)):
        elements = [_walk(rules, v, depth + 1) for v in value]
        return elements if type(value) is list else _rebuild(value, elements)
    return value


def _rebuild(original: Any, items: Any, star: bool = False) -> Any:
    try:
        return type(original)(*items) if star else type(original)(items)
    except Exception:  # a subclass with its own constructor: the plain container shows the same
        return items if isinstance(items, dict) else tuple(items)


def _hidden(value: Any, found: list[str], depth: int = 0) -> None:
    """The text forms of a hidden value (and what it contains), to look for in free text."""
    if isinstance(value, str):
        forms = {value, value.encode("unicode_escape").decode("ascii"), repr(value)[1:-1]}
        found.extend(form for form in forms if len(form) >= _MIN_SECRET)
    elif isinstance(value, (bytes, bytearray)):
        _hidden(bytes(value).decode("utf-8", "replace"), found, depth)
        found.append(repr(bytes(value))[2:-1])
    elif isinstance(value, int) and not isinstance(value, bool):
        if len(str(abs(value))) >= _MIN_SECRET:
            found.append(str(value))
    elif depth < _MAX_DEPTH and isinstance(value, Mapping):
        for item in value.values():
            _hidden(item, found, depth + 1)
    elif depth < _MAX_DEPTH and isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _hidden(item, found, depth + 1)


def _collect(rules: _Rules, value: Any, found: list[str], depth: int = 0) -> None:
    """What ``_walk`` would mask in ``value``, as text."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _secret_name(rules, key):
                _hidden(item, found)
            else:
                _collect(rules, item, found, depth + 1)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        for name, item in zip(value._fields, value, strict=False):
            if _secret_name(rules, name):
                _hidden(item, found)
            else:
                _collect(rules, item, found, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect(rules, item, found, depth + 1)


def _args_hidden(rules: _Rules, func: Any, args: Iterable[Any]) -> Iterator[tuple[bool, Any]]:
    rule = rules.function(func)
    names = _parameters(func) if rules.names is not None else ()
    for position, value in enumerate(args):
        hide = rule.args is None or position in rule.args
        hide = hide or (position < len(names) and _secret_name(rules, names[position]))
        yield hide, value


def _kwarg_hidden(rules: _Rules, func: Any, name: Any) -> bool:
    rule = rules.function(func)
    return rule.kwargs is None or name in rule.kwargs or _secret_name(rules, name)


def redact_value(value: Any) -> Any:
    """``value`` with every entry under a secret name (dict keys, at any depth) masked."""
    try:
        return _walk(_rules(), value)
    except Exception:
        return FAILED


def redact_args(func: Any, args: Iterable[Any]) -> tuple[Any, ...]:
    """The positional arguments of a call to ``func`` (a callable or its dotted path), redacted."""
    try:
        rules = _rules()
        return tuple(MASK if hide else _walk(rules, value) for hide, value in _args_hidden(rules, func, args))
    except Exception:
        return (FAILED,)


def redact_kwargs(func: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a call to ``func``, redacted."""
    try:
        rules = _rules()
        return {k: MASK if _kwarg_hidden(rules, func, k) else _walk(rules, v) for k, v in kwargs.items()}
    except Exception:
        return {"": FAILED}


def redact_result(func: Any, value: Any) -> Any:
    """What ``func`` returned, redacted."""
    try:
        rules = _rules()
        return MASK if rules.function(func).result else _walk(rules, value)
    except Exception:
        return FAILED


def hidden_values(func: Any, args: Iterable[Any], kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """Every secret a call to ``func`` carries, as the text it would show as in a message."""
    try:
        rules = _rules()
        found: list[str] = []
        calls = [*_args_hidden(rules, func, args), *((_kwarg_hidden(rules, func, k), v) for k, v in kwargs.items())]
        for hide, value in calls:
            if hide:
                _hidden(value, found)
            else:
                _collect(rules, value, found)
        return tuple(sorted(set(found), key=len, reverse=True))
    except Exception:
        return ()


# --- text ---------------------------------------------------------------------------------------


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    return MASK if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def _mask_value(match: re.Match[str]) -> str:
    """The match with only its secret part masked: group "value" (or "qv", quoted) if it has one."""
    for group in ("qv", "value"):
        if group in match.re.groupindex and match.group(group) is not None:
            start, end = match.span(group)
            if start == end:
                return match.group()
            offset = match.start()
            whole = match.group()
            return whole[: start - offset] + MASK + whole[end - offset :]
    return MASK


def _mask_key_values(names: re.Pattern[str], text: str) -> str:
    spans: list[tuple[int, int]] = []
    for match in _KEY_VALUE.finditer(text):
        if names.search(match.group("key")):
            start, end = match.span("qv" if match.group("qv") is not None else "value")
            if end > start and (not spans or start >= spans[-1][1]):
                spans.append((start, end))
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], MASK]
        last = end
    return "".join([*parts, text[last:]])


def _text(rules: _Rules, text: str, func: Any, secrets: Iterable[str]) -> str:
    literal = [s for s in secrets if s and len(s) >= _MIN_SECRET]
    if literal:
        # Digits only: not inside a longer number (a line number, a timestamp).
        alternatives = (rf"(?<!\d){re.escape(s)}(?!\d)" if s.isdigit() else re.escape(s) for s in literal)
        text = re.sub("|".join(alternatives), MASK, text)
    for pattern in (*rules.patterns, *rules.function(func).patterns):
        text = pattern.sub(_mask_value, text)
    if rules.names is not None:
        text = _mask_key_values(rules.names, text)
    if rules.cards:
        text = _CARD.sub(_mask_card, text)
    return text


def redact_text(func: Any, text: str, *, secrets: Iterable[str] = ()) -> str:
    """``text`` (a message, a traceback, a log line, a repr) with its secrets masked.

    ``secrets``: literal values to hide wherever they appear, usually
    ``hidden_values(func, args, kwargs)`` of the call the text comes from.
    """
    try:
        return _text(_rules(), text, func, secrets)
    except Exception:
        return FAILED


# --- a job's call -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A job's call as it may be shown: function, redacted arguments, the secrets to hide in text."""

    func: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    secrets: tuple[str, ...]

    def text(self, text: str) -> str:
        return redact_text(self.func, text, secrets=self.secrets)

    def result(self, value: Any) -> Any:
        return redact_result(self.func, value)

    def call_string(self, max_length: int | None = None) -> str:
        """``func(arg, ..., name=value)`` as RQ describes a job; each value cut to
        ``max_length`` after it is redacted, so no half secret is left."""

        def shown(value: Any) -> str:
            text = self.text(repr(value))
            return text[:max_length] + "..." if max_length is not None and len(text) > max_length else text

        kwargs = sorted(f"{name}={shown(value)}" for name, value in self.kwargs.items())
        return f"{self.func}({', '.join([*(shown(value) for value in self.args), *kwargs])})"


def call_for(func: Any, args: Iterable[Any], kwargs: Mapping[str, Any]) -> Call:
    """The redacted call of ``func(*args, **kwargs)`` (a schedule's, a job's)."""
    args, kwargs = tuple(args), dict(kwargs)
    return Call(_path(func), redact_args(func, args), redact_kwargs(func, kwargs), hidden_values(func, args, kwargs))


def call_of(job: Any) -> Call:
    """The redacted call of an RQ job (any job class), computed once per job object."""
    try:
        func, args, kwargs = str(job.func_name), tuple(job.args), dict(job.kwargs)
        source = (job.args, job.kwargs)
    except Exception as exc:  # undeserializable payload: nothing of it can be shown anyway
        return Call(f"<undeserializable: {type(exc).__name__}>", (), {}, ())
    cached = getattr(job, "_jobsite_call", None)
    if cached is not None and cached[0] is source[0] and cached[1] is source[1] and cached[2].func == func:
        return cached[2]  # type: ignore[no-any-return]
    call = call_for(func, args, kwargs)
    try:
        job._jobsite_call = (*source, call)
    except Exception:  # a job class with __slots__: compute it again next time
        pass
    return call


# --- log records ------------------------------------------------------------------------------


class _RedactingFilter(logging.Filter):
    def __init__(self, call: Call) -> None:
        super().__init__()
        self.call = call

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = self.call.text(record.getMessage()), None
        except Exception:
            record.msg, record.args = FAILED, None
        # RQ hands a failed job's arguments to log handlers as extras (JSON loggers print
        # them): they get the redacted reprs instead.
        if hasattr(record, "arguments"):
            record.arguments = self.call.text(repr(self.call.args))
        if hasattr(record, "kwargs"):
            record.kwargs = self.call.text(repr(self.call.kwargs))
        return True


@contextmanager
def redacting_logs(logger: logging.Logger, call: Call) -> Iterator[None]:
    """While inside, what ``logger`` emits about ``call`` is redacted."""
    guard = _RedactingFilter(call)
    logger.addFilter(guard)
    try:
        yield
    finally:
        logger.removeFilter(guard)

"""Validation of the cron expressions that KFP recurring runs accept (6 fields, seconds first).

KFP schedules with robfig/cron in its "with seconds" mode: ``SECOND MINUTE HOUR DAY-OF-MONTH MONTH
DAY-OF-WEEK``, e.g. ``0 0 2 * * *`` = every day at 02:00:00 and ``0 30 3 * * 1`` = Mondays at 03:30. Each
field is ``*``, ``?`` (day fields), a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of
those; months and weekdays also take names (JAN, MON). The descriptors ``@yearly``, ``@monthly``,
``@weekly``, ``@daily``, ``@midnight``, ``@hourly`` and ``@every <duration>`` (``@every 6h``) are accepted too.
"""

import re

from skinattn_pipelines import PipelineError

FORMAT_HELP = (
    "a KFP cron expression has 6 fields, seconds first: SECOND MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK, "
    "e.g. '0 0 2 * * *' = daily at 02:00:00, '0 30 3 * * MON' = Mondays at 03:30; a field is *, ?, N, A-B, "
    "*/N, A-B/N or a comma list; '@daily', '@hourly', '@every 6h' are accepted too"
)
# (name, lowest, highest, names that stand for numbers)
_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")


def _value(text: str, field: tuple[str, int, int, dict[str, int]]) -> int:
    name, low, high, names = field
    number = names.get(text.upper()) if not text.isdigit() else int(text)
    if number is None:
        raise ValueError(f"{text!r} is not a number{' or a name' if names else ''}")
    if not low <= number <= high:
        raise ValueError(f"{number} is outside {low}-{high}")
    return number


def _check_field(text: str, field: tuple[str, int, int, dict[str, int]]) -> None:
    name = field[0]
    for part in text.split(","):
        base, slash, step = part.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            raise ValueError(f"step {step!r} must be a positive number")
        if base == "*" or (base == "?" and name in ("day-of-month", "day-of-week")):
            continue
        start, dash, end = base.partition("-")
        if dash:
            if _value(start, field) > _value(end, field):
                raise ValueError(f"range {base!r} runs backwards")
        else:
            _value(start, field)


def validate_cron(expression: str) -> str:
    """The expression, stripped, if KFP accepts it; else PipelineError explaining the format."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text in DESCRIPTORS:
            return text
        every, _, duration = text.partition(" ")
        if every == "@every" and _DURATION.fullmatch(duration):
            return text
        raise PipelineError(f"cron {expression!r}: unknown descriptor; {FORMAT_HELP}")
    fields = text.split(" ") if text else []
    if len(fields) != len(FIELDS):
        hint = " (a 5-field Unix cron lacks the leading SECOND field: prepend '0 ')" if len(fields) == 5 else ""
        raise PipelineError(f"cron {expression!r} has {len(fields)} field(s), not 6{hint}; {FORMAT_HELP}")
    for text_field, field in zip(fields, FIELDS):
        try:
            _check_field(text_field, field)
        except ValueError as exc:
            raise PipelineError(f"cron {expression!r}: {field[0]} field {text_field!r}: {exc}; {FORMAT_HELP}") from None
    return text

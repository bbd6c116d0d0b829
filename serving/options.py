"""Reading the request options of /classify (today only ``attention``) into Python values.

BentoML would validate a ``bool`` parameter itself, but it answers a bad value with its own 400 body
(``{"error", "detail"}``) unlike every other refusal of the service, and it never sees the query string.
The endpoint therefore takes the raw values and reads them here, so that a bad one gets the service's
plain ``{"error": ...}`` answer, wherever it was sent.
"""

from __future__ import annotations

from typing import Any

# The spellings curl, HTML forms and query strings use; BentoML has already turned the form field's
# "true"/"false"/"1"/"0" into JSON values (True/False/1/0) when it reaches the endpoint.
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
ACCEPTED = "true or false (also 1/0, yes/no, on/off)"


class BadOption(ValueError):
    """A request option with a value the service does not understand; the message is for the caller."""


def parse_flag(value: Any, name: str, where: str) -> bool | None:
    """``value`` as a boolean, or None when it was not given.

    Args:
        value: what the client sent: None (absent), a bool or 0/1 (a form field BentoML parsed as JSON),
            or a string (the query string, or a form field that is not JSON).
        name: the option's name, for the message.
        where: where it came from ("form field", "query parameter"), for the message.

    Raises:
        BadOption: for any other value, naming the option, where it came from and the value.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise BadOption(f"{name} must be {ACCEPTED}, got {value!r} in the {where} {name!r}")


def attention_wanted(form_value: Any, query_value: str | None) -> bool:
    """Whether the client asked for the attention map, by form field or query parameter.

    Raises:
        BadOption: a value is not a boolean, or the two places disagree (a client bug worth reporting
            rather than guessing which one was meant).
    """
    from_form = parse_flag(form_value, "attention", "form field")
    from_query = parse_flag(query_value, "attention", "query parameter")
    if from_form is not None and from_query is not None and from_form != from_query:
        raise BadOption(
            f"attention is {from_form} in the form field but {from_query} in the query string; send it once"
        )
    return bool(from_form or from_query)

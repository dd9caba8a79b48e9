"""The AWS SDK's own variables that the process reads at start, checked before any client is made.

`clients.py` reads `AWS_REGION`, `AWS_RETRY_MODE` and `AWS_MAX_ATTEMPTS`, and botocore reads the endpoints and
`AWS_DEFAULT_REGION`. A bad value would surface as a botocore traceback at the first client; here it becomes one
line that names the variable and says what it allows. The rules are botocore's own (its retry modes, its check
of an endpoint's host, its check of a region name), plus an http(s) scheme for endpoints. Unset or empty means
the SDK's default, as `clients.py` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from botocore.exceptions import InvalidRegionError
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url, validate_region_name

RETRY_MODES = ("legacy", "standard", "adaptive")  # botocore's Config accepts these and only these
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def _retry_mode(value: str) -> bool:
    return value in RETRY_MODES


def _max_attempts(value: str) -> bool:
    return value.strip().isdigit() and int(value) >= 1  # botocore: int(value), and total_max_attempts >= 1


def _endpoint(value: str) -> bool:
    try:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or (parts.port is None and parts.netloc.endswith(":")):
            return False
        return bool(is_valid_endpoint_url(value) or is_valid_ipv6_endpoint_url(value))
    except ValueError:  # a malformed IPv6 host, or a port that is not 0-65535
        return False


def _region(value: str) -> bool:
    try:
        validate_region_name(value)
    except InvalidRegionError:
        return False
    return True


Rule = tuple[Callable[[str], bool], str]
RULES: dict[str, Rule] = {
    "AWS_RETRY_MODE": (_retry_mode, "must be one of " + ", ".join(RETRY_MODES)),
    "AWS_MAX_ATTEMPTS": (_max_attempts, "must be a whole number of attempts, 1 or more"),
    **dict.fromkeys(
        ENDPOINT_VARIABLES, (_endpoint, "must be an absolute http:// or https:// URL, like http://127.0.0.1:5000")
    ),
    **dict.fromkeys(REGION_VARIABLES, (_region, "must be a region name, like eu-west-1")),
}


def problems(environ: Mapping[str, str]) -> list[str]:
    """One `VARIABLE: what it allows` per invalid AWS variable in `environ`; empty when all are valid."""
    return [
        f"{name}: {allowed}"
        for name, (valid, allowed) in RULES.items()
        if (value := environ.get(name)) and not valid(value)
    ]

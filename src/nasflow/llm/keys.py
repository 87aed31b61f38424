"""Which OpenAI-compatible endpoints need an API key (standard library only: the workflow imports
this at parse time to list the environment variables it requires before any job).

A local server may run without a key: a base URL whose host is loopback (`localhost`,
`127.0.0.0/8`, `::1`) over any scheme, or a private host over plain `http://` (a private,
link-local or unique-local address, a single-label name such as `gpu-node`, or a name under
`.local`, `.localdomain`, `.internal`, `.lan`, `.home.arpa`). Everything else needs one: no base
URL (api.openai.com), and any `https://` URL to a host that is not loopback (Azure OpenAI, a
hosted vLLM, ...).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
PRIVATE_SUFFIXES = (".local", ".localdomain", ".internal", ".lan", ".home.arpa")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """`localhost` (or a name under it) or a loopback address."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def is_private_host(host: str) -> bool:
    """A loopback, private, link-local or unique-local address, or a name that only resolves
    inside a site (single label, or a private suffix)."""
    host = host.lower().rstrip(".")
    if is_loopback_host(host):
        return True
    address = _address(host)
    if address is not None:
        return address.is_private or address.is_link_local
    return "." not in host or host.endswith(PRIVATE_SUFFIXES)


def needs_api_key(base_url: str | None) -> bool:
    """Whether requests to `base_url` (None: api.openai.com) need an API key (module doc)."""
    if not base_url:
        return True
    parts = urlsplit(base_url.strip())
    host = parts.hostname or ""
    if not host:
        return True  # not a URL we can place: ask for the key rather than guess
    if is_loopback_host(host):
        return False
    return not (parts.scheme.lower() == "http" and is_private_host(host))


def required_key_envs(setups) -> list[str]:
    """The environment variables (sorted, distinct) that the `openai` setups in `setups`
    (mappings with `provider`, optional `base_url` and `api_key_env`) need set."""
    return sorted(
        {
            setup.get("api_key_env") or DEFAULT_API_KEY_ENV
            for setup in setups
            if setup.get("provider") == "openai" and needs_api_key(setup.get("base_url"))
        }
    )

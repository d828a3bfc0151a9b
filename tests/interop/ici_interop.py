"""Shared helpers for the SOAP toolkit interop scripts (zeep_client.py, suds_client.py).

Each script takes the connector's base URL as argv[1] (e.g. ``http://127.0.0.1:8080/``),
loads the WSDL from the server itself (``<base>?wsdl=<Interface>``) and exits non-zero with
a line starting with ``FAIL:`` on the first mismatch.

The test user (a userId configured in the connector under test, with currentWorkmode 1 and
workmodes 1, 2 and 3) is argv[2], else the environment variable ICI_TEST_USER, else
``AGENT1``.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE.parent / "schemas"

#: A user the connector under test does not know.
UNKNOWN_USER = "NO_SUCH_USER_4711"

#: The ICI version the connector speaks (ICI.md section 4).
ICI_VERSION = "3.06"

#: Seconds to wait for any single HTTP exchange.
TIMEOUT = 15

#: Well-known schema URLs a toolkit may try to fetch, mapped to local copies, so that the
#: tests never depend on the internet (INTEROP.md, "zeep offline").
LOCAL_SCHEMAS = {
    "http://schemas.xmlsoap.org/soap/encoding/": SCHEMAS / "soap-encoding.xsd",
    "http://schemas.xmlsoap.org/soap/envelope/": SCHEMAS / "soap-envelope.xsd",
    "http://schemas.xmlsoap.org/wsdl/": SCHEMAS / "wsdl.xsd",
    "http://schemas.xmlsoap.org/wsdl/soap/": SCHEMAS / "wsdl-soap.xsd",
}


class Failure(Exception):
    """A check that did not hold."""


def fail(message):
    raise Failure(message)


def check(condition, message):
    if not condition:
        fail(message)


def local_schema(url):
    """The local copy of a well-known schema URL, or None."""
    path = LOCAL_SCHEMAS.get(url) or LOCAL_SCHEMAS.get(url.rstrip("/") + "/")
    return path if path is not None and path.is_file() else None


def arguments(script):
    if len(sys.argv) < 2 or not sys.argv[1].startswith(("http://", "https://")):
        print(f"usage: {script} BASE_URL [USER_ID]   e.g. http://127.0.0.1:8080/", file=sys.stderr)
        sys.exit(2)
    base = sys.argv[1]
    user = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("ICI_TEST_USER", "AGENT1")
    return base, user


def wsdl_url(base, interface):
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}wsdl={interface}"


def local_name(code):
    """`SOAP-ENV:Client` / `{ns}Client` / `Client` -> `Client`."""
    code = str(code or "")
    return code.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def check_product_information(result, ints=int):
    check(result is not None, "exchangeProductInformation returned nothing")
    for field in ("productName", "productVersion", "iciVersion"):
        value = getattr(result, field, None)
        check(isinstance(value, str) and value.strip() != "",
              f"exchangeProductInformation: {field} should be a non-empty string, got {value!r}")
    check(result.iciVersion == ICI_VERSION,
          f"exchangeProductInformation: iciVersion {result.iciVersion!r}, expected {ICI_VERSION!r}")


def check_user_attributes(op, result, user, workmode_items, string_items):
    """`workmode_items(result)` / `string_items(array)` turn the toolkit's array objects
    into Python lists (None when the toolkit did not produce a list)."""
    check(result is not None, f"{op}: returned nothing")
    if getattr(result, "userId", None) is not None:
        check(result.userId == user, f"{op}: userId {result.userId!r}, expected {user!r}")
    current = result.currentWorkmode
    check(type(current) is int, f"{op}: currentWorkmode should be an int, got {current!r}")
    check(current == 1, f"{op}: currentWorkmode {current}, expected 1 (logged off)")

    workmodes = workmode_items(result.workmodes)
    check(isinstance(workmodes, list), f"{op}: workmodes should be a list, got {workmodes!r}")
    ids = []
    for workmode in workmodes:
        check(type(workmode.id) is int, f"{op}: workmode id should be an int, got {workmode.id!r}")
        ids.append(workmode.id)
        if workmode.selectable is not None:
            check(isinstance(workmode.selectable, bool),
                  f"{op}: workmode selectable should be a bool, got {workmode.selectable!r}")
    for wanted in (1, 2, 3):
        check(wanted in ids, f"{op}: workmode {wanted} missing from workmodes {ids}")

    for field in ("channels", "currentChannels", "queues", "currentQueues", "addresses",
                  "capabilities"):
        array = getattr(result, field, None)
        if array is None:
            continue
        items = string_items(array)
        check(isinstance(items, list) and all(isinstance(i, str) for i in items),
              f"{op}: {field} should be a list of strings, got {items!r}")
    for field in ("workcenterCapability",):
        value = getattr(result, field, None)
        check(value is None or isinstance(value, bool),
              f"{op}: {field} should be a bool, got {value!r}")
    for field in ("maxInteractions",):
        value = getattr(result, field, None)
        check(value is None or type(value) is int, f"{op}: {field} should be an int, got {value!r}")
    return ids


def run(script, checks):
    """Runs `checks()` (a list of (name, callable)), prints one line per check, exits 1 on the
    first failure with a FAIL: line naming it."""
    done = 0
    for name, fn in checks:
        try:
            fn()
        except Failure as failure:
            print(f"FAIL: {script}: {name}: {failure}", file=sys.stderr)
            sys.exit(1)
        except Exception as error:  # a toolkit crash is a failure too, with its cause
            print(f"FAIL: {script}: {name}: unexpected {type(error).__name__}: {error}",
                  file=sys.stderr)
            import traceback
            traceback.print_exc()
            sys.exit(1)
        print(f"ok: {name}")
        done += 1
    print(f"{script}: all {done} checks passed")

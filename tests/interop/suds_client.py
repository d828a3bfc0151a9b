#!/usr/bin/env python3
"""Drives the connector with suds (suds-community), through the WSDL the connector serves.

Usage: suds_client.py BASE_URL [USER_ID]   (see ici_interop.py)

suds notes for this WSDL:
- no cache (cache=None): the WSDL comes from the server under test, fresh each run;
- `location=BASE_URL` so the calls reach the server under test whatever its WSDL says;
- the `user`/`language` headers are set with the `soapheaders` option;
- suds unwraps an array of one element into the element itself: `items()` undoes that;
- suds writes SOAP-ENV:encodingStyle on the envelope and an empty <SOAP-ENV:Header/>
  even for literal use, and binds the envelope namespace to two prefixes.
"""

import sys

import suds
import suds.client
import suds.transport.http

import ici_interop as ici
from ici_interop import check, fail

SCRIPT = "suds_client"


class OfflineTransport(suds.transport.http.HttpTransport):
    """Serves well-known schema URLs from local copies instead of the internet."""

    def open(self, request):
        path = ici.local_schema(request.url)
        if path is not None:
            return open(path, "rb")
        return super().open(request)


def items(array):
    """A suds array object (`ArrayOfX` with `item` children) as a Python list."""
    if array is None:
        return None
    value = getattr(array, "item", [])
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def main():
    base, user = ici.arguments(SCRIPT)
    clients = {}

    def client(interface):
        if interface not in clients:
            c = suds.client.Client(ici.wsdl_url(base, interface), location=base, cache=None,
                                   timeout=ici.TIMEOUT, transport=OfflineTransport())
            c.set_options(soapheaders={"user": user, "language": "EN"})
            clients[interface] = c
        return clients[interface]

    def call(interface, operation, *args):
        return getattr(client(interface).service, operation)(*args)

    def expect_fault(interface, operation, *args):
        try:
            result = call(interface, operation, *args)
        except suds.WebFault as error:
            fault = error.fault
            faultstring = getattr(fault, "faultstring", None)
            check(faultstring and str(faultstring).strip(),
                  f"{operation}: fault without a faultstring: {fault!r}")
            code = ici.local_name(getattr(fault, "faultcode", None))
            check(code in ("Client", "Server"),
                  f"{operation}: faultcode {fault.faultcode!r}, expected Client or Server")
            print(f"   {operation} -> {code}: {faultstring}")
            return
        fail(f"{operation}{args} answered {result!r}, expected a SOAP fault")

    def product_information():
        result = call("System", "exchangeProductInformation", "suds", suds.__version__,
                      ici.ICI_VERSION)
        ici.check_product_information(result)
        # Optional parameters left out altogether.
        result = call("System", "exchangeProductInformation")
        ici.check_product_information(result)

    def attributes(operation):
        def run():
            result = call("User", operation, user)
            ids = ici.check_user_attributes(operation, result, user, items, items)
            print(f"   {operation}: workmodes {ids}")
        return run

    ici.run(SCRIPT, [
        ("exchangeProductInformation", product_information),
        ("getAttributes", attributes("getAttributes")),
        ("getUserAttributes", attributes("getUserAttributes")),
        ("getAttributes of an unknown user is a fault",
         lambda: expect_fault("User", "getAttributes", ici.UNKNOWN_USER)),
        ("hold of an unknown call is a fault",
         lambda: expect_fault("PhoneCall", "hold", "nope")),
    ])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Drives the connector with zeep, through the WSDL the connector serves.

Usage: zeep_client.py BASE_URL [USER_ID]   (see ici_interop.py)

zeep needs, for this WSDL:
- a Transport that never fetches well-known schemas from the internet (OfflineTransport);
- rpc parts are always required in zeep: an optional parameter is left out by passing
  zeep.xsd.SkipValue;
- the `user`/`language` headers go in `_soapheaders` (they are declared in the WSDL as
  global elements in the interface namespace, so zeep sends them qualified, like SAP).
"""

import sys

import zeep
import zeep.exceptions
from zeep.transports import Transport

import ici_interop as ici
from ici_interop import check, fail

SCRIPT = "zeep_client"


class OfflineTransport(Transport):
    """Serves well-known schema URLs from local copies instead of the internet."""

    def load(self, url):
        path = ici.local_schema(url)
        if path is not None:
            return path.read_bytes()
        return super().load(url)


def main():
    base, user = ici.arguments(SCRIPT)
    transport = OfflineTransport(timeout=ici.TIMEOUT, operation_timeout=ici.TIMEOUT)
    clients = {}

    def service(interface):
        """(client, service bound to BASE_URL, soap headers) for an interface."""
        if interface not in clients:
            client = zeep.Client(ici.wsdl_url(base, interface), transport=transport)
            name = f"Ici{interface}Interface"
            namespace = f"urn:{name}"
            # Call the server under test even if its WSDL names another address.
            bound = client.create_service(f"{{{namespace}}}{name}Binding", base)
            try:
                client.get_element(f"{{{namespace}}}user")
                headers = {"user": user, "language": "EN"}
            except (LookupError, zeep.exceptions.Error):
                headers = None
            clients[interface] = (client, bound, headers)
        return clients[interface]

    def call(interface, operation, **params):
        _, bound, headers = service(interface)
        if headers is not None:
            params["_soapheaders"] = headers
        return getattr(bound, operation)(**params)

    def expect_fault(interface, operation, **params):
        try:
            result = call(interface, operation, **params)
        except zeep.exceptions.Fault as fault:
            check(fault.message and fault.message.strip(),
                  f"{operation}: fault without a faultstring: {fault!r}")
            code = ici.local_name(fault.code)
            check(code in ("Client", "Server"),
                  f"{operation}: faultcode {fault.code!r}, expected Client or Server")
            print(f"   {operation} -> {code}: {fault.message}")
            return
        fail(f"{operation} with {params} answered {result!r}, expected a SOAP fault")

    def product_information():
        result = call("System", "exchangeProductInformation", productName="zeep",
                      productVersion=zeep.__version__, iciVersion=ici.ICI_VERSION)
        ici.check_product_information(result)
        # Optional parameters left out altogether.
        result = call("System", "exchangeProductInformation", productName=zeep.xsd.SkipValue,
                      productVersion=zeep.xsd.SkipValue, iciVersion=zeep.xsd.SkipValue)
        ici.check_product_information(result)

    def items(array):
        # zeep keeps the ArrayOfX wrapper: the list is its `item` field.
        if array is None:
            return None
        return list(array.item) if isinstance(array.item, list) else array.item

    def attributes(operation):
        def run():
            result = call("User", operation, userId=user)
            ids = ici.check_user_attributes(operation, result, user, items, items)
            print(f"   {operation}: workmodes {ids}")
        return run

    def headers_declared():
        for interface in ("System", "User", "PhoneCall"):
            check(service(interface)[2] is not None,
                  f"the Ici{interface}Interface WSDL does not declare the user header")

    ici.run(SCRIPT, [
        ("WSDL declares the user/language headers", headers_declared),
        ("exchangeProductInformation", product_information),
        ("getAttributes", attributes("getAttributes")),
        ("getUserAttributes", attributes("getUserAttributes")),
        ("getAttributes of an unknown user is a fault",
         lambda: expect_fault("User", "getAttributes", userId=ici.UNKNOWN_USER)),
        ("hold of an unknown call is a fault",
         lambda: expect_fault("PhoneCall", "hold", callId="nope")),
    ])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Loads every WSDL file of a directory with zeep, suds and xmlschema, offline.

Usage: load_wsdl.py WSDL_DIR   (run by the Rust unit test wsdl::tests with $ICI_PYTHON)

Checks that each toolkit reads the document, sees exactly the operations of its portType,
and (zeep) the user/language headers on SAP-facing interfaces; that the embedded XML
schema is a valid XSD 1.0 schema. Exits 1 with a FAIL: line on the first problem.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import suds.client
import xmlschema
import zeep
from lxml import etree

import ici_interop as ici
from ici_interop import check
from zeep_client import OfflineTransport as ZeepOfflineTransport
from suds_client import OfflineTransport as SudsOfflineTransport

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XSD = "http://www.w3.org/2001/XMLSchema"


def checks_for(path):
    tree = ET.parse(path)
    namespace = tree.getroot().get("targetNamespace")
    name = tree.getroot().get("name")
    wanted = sorted(op.get("name") for op in tree.getroot().iterfind(
        f"{{{WSDL}}}portType/{{{WSDL}}}operation"))

    def embedded_schema():
        # lxml keeps the prefixes that QName values such as type="xsd:string" rely on.
        schema = etree.parse(str(path)).find(f"{{{WSDL}}}types/{{{XSD}}}schema")
        check(schema is not None, "no embedded schema")
        xmlschema.XMLSchema10(etree.tostring(schema, encoding="unicode"), build=True)

    def with_zeep():
        client = zeep.Client(str(path), transport=ZeepOfflineTransport())
        binding = client.service._binding
        found = sorted(binding._operations)
        check(found == wanted, f"zeep sees {found}, the portType has {wanted}")
        if name != "IciEventInterface":
            client.get_element(f"{{{namespace}}}user")
            client.get_element(f"{{{namespace}}}language")

    def with_suds():
        client = suds.client.Client(path.resolve().as_uri(), cache=None,
                                    transport=SudsOfflineTransport())
        port = client.wsdl.services[0].ports[0]
        found = sorted(port.methods)
        check(found == wanted, f"suds sees {found}, the portType has {wanted}")

    return [
        (f"{name}: schema", embedded_schema),
        (f"{name}: zeep", with_zeep),
        (f"{name}: suds", with_suds),
    ]


def main():
    if len(sys.argv) != 2:
        print("usage: load_wsdl.py WSDL_DIR", file=sys.stderr)
        return 2
    files = sorted(Path(sys.argv[1]).glob("*.wsdl"))
    if not files:
        print(f"FAIL: load_wsdl: no .wsdl files in {sys.argv[1]}", file=sys.stderr)
        return 1
    ici.run("load_wsdl", [c for path in files for c in checks_for(path)])
    return 0


if __name__ == "__main__":
    sys.exit(main())

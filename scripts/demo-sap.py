#!/usr/bin/env python3
"""A stand-in for SAP's event endpoint, for demos: prints every event the connector POSTs
and answers 200, as SAP's IC session does.

    python3 scripts/demo-sap.py [PORT]     (default 9000; path /sap/events is fine, any path works)
"""
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Events(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8", "replace")
        name = re.search(r"<ns:(\w+) ", body)
        fields = dict(re.findall(r"<(sequence|state|callId|remoteAddress|workmode|reason)>([^<]*)<", body))
        print(f"{name.group(1) if name else '?'} {fields}", flush=True)
        reply = b'<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body/></SOAP-ENV:Envelope>'
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening for events on http://127.0.0.1:{port}/sap/events", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Events).serve_forever()

// Benchmark 5: the peer. node-soap (npm "soap"), a mainstream SOAP stack, serving
// getPhoneCallAttributes of our own IciPhoneCallInterface WSDL with a fixed call, so the
// load tool measures what the stack itself costs. Prints "listening 127.0.0.1:PORT".
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const soap = require('soap');

const wsdl = fs.readFileSync(
  path.join(__dirname, '..', '..', 'wsdl', 'IciPhoneCallInterface.wsdl'),
  'utf8',
);

const call = {
  callId: 'sim-1',
  userId: 'B00000',
  state: 'held',
  direction: 'inbound',
  remoteAddress: '+4930123456',
  dialedAddress: '300000',
  parties: { item: ['+4930123456', '300000'] },
};

const service = {
  IciPhoneCallInterfaceService: {
    IciPhoneCallInterfacePort: {
      getPhoneCallAttributes(args) {
        return { return: { ...call, callId: args.callId || call.callId } };
      },
    },
  },
};

const server = http.createServer((req, res) => {
  res.statusCode = 404;
  res.end();
});
server.keepAliveTimeout = 120000;
server.listen(0, '127.0.0.1', () => {
  soap.listen(server, '/', service, wsdl);
  const { address, port } = server.address();
  console.log(`listening ${address}:${port}`);
});

// A strict OTLP/HTTP JSON trace receiver for redstream's integration tests.
//
// Every POSTed body is checked against the official OTLP protobuf schema (the .proto files of
// opentelemetry-proto that @opentelemetry/otlp-grpc-exporter-base ships, loaded with
// protobufjs) under the proto3 JSON mapping as OTLP/JSON specifies it: field names in
// lowerCamelCase only, every value of its field's JSON type, no unknown key anywhere, at most
// one member of a oneof, and traceId/spanId/parentSpanId as hex strings (OTLP's exception to
// base64 bytes). A body that fails is answered 400 and its errors are appended to the errors
// file, which the test requires to stay empty. Every accepted span is appended to the spans
// file as one JSON line.
//
// Usage: node receiver.js --port-file F --spans F --errors F [--status 200|503]
// It listens on 127.0.0.1 on a free port and writes the port to --port-file when ready.

'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const protobuf = require('protobufjs');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const portFile = arg('--port-file');
const spansFile = arg('--spans');
const errorsFile = arg('--errors');
const status = Number(arg('--status', '200'));

const protoDir = path.join(path.dirname(require.resolve(
  '@opentelemetry/otlp-grpc-exporter-base/package.json')), 'build', 'protos');
const root = new protobuf.Root();
root.resolvePath = (origin, target) => path.join(protoDir, target);
root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', {keepCase: false});
root.resolveAll();
const Request = root.lookupType(
  'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');

const INT32 = new Set(['int32', 'sint32', 'sfixed32', 'uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);
const HEX_IDS = {traceId: 32, spanId: 16, parentSpanId: 16};

function checkScalar(field, v, where, errors) {
  const t = field.type;
  if (t === 'string') {
    if (typeof v !== 'string') errors.push(`${where}: string expected, got ${JSON.stringify(v)}`);
  } else if (t === 'bool') {
    if (typeof v !== 'boolean') errors.push(`${where}: boolean expected`);
  } else if (t === 'double' || t === 'float') {
    if (typeof v !== 'number' && !['NaN', 'Infinity', '-Infinity'].includes(v))
      errors.push(`${where}: number expected`);
  } else if (INT32.has(t)) {
    if (!(Number.isInteger(v) || (typeof v === 'string' && /^-?\d+$/.test(v))))
      errors.push(`${where}: ${t} expected, got ${JSON.stringify(v)}`);
  } else if (INT64.has(t)) {
    // The proto3 JSON mapping writes 64-bit integers as decimal strings (numbers accepted).
    if (!(typeof v === 'string' && /^-?\d+$/.test(v)) && !Number.isInteger(v))
      errors.push(`${where}: ${t} (decimal string) expected, got ${JSON.stringify(v)}`);
  } else if (t === 'bytes') {
    if (field.name in HEX_IDS) {
      const n = HEX_IDS[field.name];
      if (typeof v !== 'string' || !(new RegExp(`^[0-9a-f]{${n}}$`).test(v) ||
          (field.name === 'parentSpanId' && v === '')))
        errors.push(`${where}: ${n} lowercase hex digits expected, got ${JSON.stringify(v)}`);
    } else if (typeof v !== 'string' || !/^[A-Za-z0-9+/_-]*=*$/.test(v)) {
      errors.push(`${where}: base64 expected`);
    }
  } else {
    errors.push(`${where}: unsupported type ${t}`);
  }
}

function checkValue(field, v, where, errors) {
  if (field.resolvedType instanceof protobuf.Type) {
    checkMessage(field.resolvedType, v, where, errors);
  } else if (field.resolvedType instanceof protobuf.Enum) {
    const values = field.resolvedType.values;
    const ok = Number.isInteger(v) ? Object.values(values).includes(v) :
      typeof v === 'string' && v in values;
    if (!ok) errors.push(`${where}: ${field.resolvedType.name} value expected, got ${JSON.stringify(v)}`);
  } else {
    checkScalar(field, v, where, errors);
  }
}

function checkMessage(type, obj, where, errors) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    errors.push(`${where}: object of ${type.name} expected`);
    return;
  }
  const oneofSeen = {};
  for (const [key, v] of Object.entries(obj)) {
    const field = type.fields[key];
    const at = `${where}.${key}`;
    if (!field) {
      errors.push(`${at}: unknown field of ${type.fullName}`);
      continue;
    }
    if (field.partOf) {
      if (oneofSeen[field.partOf.name]) errors.push(`${at}: second member of oneof ${field.partOf.name}`);
      oneofSeen[field.partOf.name] = true;
    }
    if (v === null) continue; // proto3 JSON: null means the default
    if (field.map) {
      errors.push(`${at}: map fields are not expected in traces`);
    } else if (field.repeated) {
      if (!Array.isArray(v)) errors.push(`${at}: array expected`);
      else v.forEach((item, i) => checkValue(field, item, `${at}[${i}]`, errors));
    } else {
      checkValue(field, v, at, errors);
    }
  }
}

function attrs(list) {
  const out = {};
  for (const a of list || []) {
    const v = a.value || {};
    out[a.key] = 'intValue' in v ? Number(v.intValue) : v.stringValue;
  }
  return out;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const errors = [];
    if (req.method !== 'POST' || req.url !== '/v1/traces') errors.push(`${req.method} ${req.url}`);
    if (!/^application\/json\b/.test(req.headers['content-type'] || ''))
      errors.push(`Content-Type ${req.headers['content-type']}`);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      errors.push(`invalid JSON: ${e.message}`);
    }
    if (body !== undefined) checkMessage(Request, body, '$', errors);
    if (errors.length > 0) {
      fs.appendFileSync(errorsFile, errors.join('\n') + '\n');
      res.writeHead(400, {'Content-Type': 'application/json'});
      res.end(JSON.stringify({code: 3, message: errors[0]}));
      return;
    }
    if (status !== 200) {
      res.writeHead(status, {'Content-Type': 'application/json'});
      res.end('{}');
      return;
    }
    const lines = [];
    for (const rs of body.resourceSpans || []) {
      const resource = attrs((rs.resource || {}).attributes);
      for (const ss of rs.scopeSpans || []) {
        for (const s of ss.spans || []) {
          lines.push(JSON.stringify({
            resource, scope: ss.scope, traceId: s.traceId, spanId: s.spanId,
            parentSpanId: s.parentSpanId || '', name: s.name, kind: s.kind,
            start: s.startTimeUnixNano, end: s.endTimeUnixNano, attributes: attrs(s.attributes),
            status: s.status || {},
          }));
        }
      }
    }
    if (lines.length > 0) fs.appendFileSync(spansFile, lines.join('\n') + '\n');
    res.writeHead(200, {'Content-Type': 'application/json'});
    res.end('{}');
  });
});

server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(portFile + '.tmp', String(server.address().port));
  fs.renameSync(portFile + '.tmp', portFile);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

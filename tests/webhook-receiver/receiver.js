// A recording webhook for redstream's ordering tests and the ordering benchmark.
//
// It answers the http handler's POSTs (body: {"stream":..,"id":..,"delivery":N,"fields":{..}})
// after a random delay, records every request in arrival order, and can be told to answer 503
// (retryable) to the first deliveries of given entries or 400 (permanent: the entry is
// dead-lettered) to given entries. Plain Node.js (Debian's nodejs), no modules to install.
//
// Usage: node receiver.js --port-file F [--record F] [--delay-ms MIN[-MAX]] [--key-field NAME]
//   --port-file  where the port is written (atomically) once the server listens on 127.0.0.1
//   --record     where the record is written on POST /dump and at SIGTERM/SIGINT
//   --delay-ms   each answer waits a uniformly random whole number of ms in MIN..MAX (default
//                0: answer at once; "2" means 0..2, "1-1" a fixed 1 ms)
//   --key-field  the entry field recorded as the request's key (default "key")
//
// Any POST other than the control paths below is a delivery. Control:
//   GET  /stats    {"requests","ok","retry","reject","bad","inflight","max_inflight",
//                  "connections","distinct_ok","distinct_final"}: connections that carried a
//                  delivery (keep-alive: one per consumer worker and stream), distinct ids
//                  answered 200, and answered 200 or 400. Counts only; the record is untouched.
//   POST /control  JSON {"retry": {"<id>": N, ...}, "reject": ["<id>", ...],
//                  "delay_ms": [MIN, MAX]}: from now on a delivery of <id> with "delivery" <= N
//                  is answered 503, one of a rejected id 400. Each member is optional; retry and
//                  reject rules add to the ones already set.
//   POST /dump     writes the record to --record (temp file + rename) and answers
//                  {"written": N}; 409 without --record.
//
// The record: one JSON object per request, in arrival order:
//   {"a": arrival event, "d": completion event (null while in flight), "ta"/"td": the same
//    instants in microseconds since start, "stream", "key" (null when the field is absent),
//    "id", "delivery", "status"}
// Events are numbered from one counter shared by arrivals (the request's body has been read)
// and completions (just before the answer is written), so "request B arrived after request A
// was answered" is exactly B.a > A.d: the consumer cannot have seen A's answer before A.d was
// taken, so an ordered consumer's next request of the same key always satisfies it. A body
// that is not a delivery of the documented shape is answered 400 and recorded with
// "bad": true.
//
// DESIGN: one event loop; a request's delay is a timer, so thousands of requests can wait at
// once and a keep-alive connection per consumer worker (libcurl's) is served without limit
// on requests per connection. The record is kept in memory (a few MB for 100,000 requests).

'use strict';

const fs = require('fs');
const http = require('http');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

function parseDelay(text) {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) {
    throw new Error(`--delay-ms: MIN or MIN-MAX whole milliseconds expected, got '${text}'`);
  }
  const lo = m[2] === undefined ? 0 : Number(m[1]);
  const hi = m[2] === undefined ? Number(m[1]) : Number(m[2]);
  if (hi < lo || hi > 60000) throw new Error(`--delay-ms: bad range '${text}'`);
  return [lo, hi];
}

const portFile = arg('--port-file');
const recordFile = arg('--record');
const keyField = arg('--key-field', 'key');
let delay;
try {
  delay = parseDelay(arg('--delay-ms', '0'));
} catch (e) {
  process.stderr.write(`receiver.js: ${e.message}\n`);
  process.exit(64);
}
if (!portFile) {
  process.stderr.write('receiver.js: --port-file is required\n');
  process.exit(64);
}

const retry = new Map();  // id -> answer 503 while delivery <= this
const reject = new Set(); // ids answered 400
const records = [];
const okIds = new Set();
const finalIds = new Set();
const stats = {requests: 0, ok: 0, retry: 0, reject: 0, bad: 0, inflight: 0, max_inflight: 0,
  connections: 0};
const deliverySockets = new WeakSet();
let events = 0;
const t0 = process.hrtime.bigint();

function nowUs() {
  return Number((process.hrtime.bigint() - t0) / 1000n);
}

function answer(res, status, body) {
  const text = body === undefined ? '' : JSON.stringify(body) + '\n';
  res.writeHead(status, {'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text)});
  res.end(text);
}

function writeRecord() {
  const lines = records.map((r) => JSON.stringify(r)).join('\n');
  fs.writeFileSync(recordFile + '.tmp', records.length ? lines + '\n' : '');
  fs.renameSync(recordFile + '.tmp', recordFile);
  return records.length;
}

function control(body, res) {
  let c;
  try {
    c = JSON.parse(body);
    if (c === null || typeof c !== 'object') throw new Error('an object expected');
    for (const [id, n] of Object.entries(c.retry || {})) {
      if (!Number.isInteger(n) || n < 0) throw new Error(`retry.${id}: a count expected`);
    }
    if (c.reject !== undefined && !Array.isArray(c.reject)) {
      throw new Error('reject: a list of ids expected');
    }
    if (c.delay_ms !== undefined) delay = parseDelay(c.delay_ms.join('-'));
  } catch (e) {
    answer(res, 400, {error: `bad control body: ${e.message}`});
    return;
  }
  for (const [id, n] of Object.entries(c.retry || {})) retry.set(id, n);
  for (const id of c.reject || []) reject.add(String(id));
  answer(res, 200, {retry: retry.size, reject: reject.size, delay_ms: delay});
}

function deliver(body, req, res) {
  if (!deliverySockets.has(req.socket)) {
    deliverySockets.add(req.socket);
    stats.connections++;
  }
  const rec = {a: ++events, d: null, ta: nowUs(), td: null, stream: null, key: null, id: null,
    delivery: null, status: 0};
  records.push(rec);
  stats.requests++;
  stats.inflight++;
  if (stats.inflight > stats.max_inflight) stats.max_inflight = stats.inflight;
  let e;
  try {
    e = JSON.parse(body);
    if (e === null || typeof e !== 'object' || typeof e.stream !== 'string' ||
        typeof e.id !== 'string' || !/^\d+-\d+$/.test(e.id) ||
        !Number.isInteger(e.delivery) || e.delivery < 1 ||
        e.fields === null || typeof e.fields !== 'object') {
      throw new Error('not a delivery');
    }
  } catch (err) {
    e = null;
  }
  let status;
  if (e === null) {
    rec.bad = true;
    stats.bad++;
    status = 400;
  } else {
    rec.stream = e.stream;
    rec.id = e.id;
    rec.delivery = e.delivery;
    const k = e.fields[keyField];
    rec.key = typeof k === 'string' ? k : null;
    if (reject.has(e.id)) {
      status = 400;
    } else if (retry.has(e.id) && e.delivery <= retry.get(e.id)) {
      status = 503;
    } else {
      status = 200;
    }
  }
  const ms = delay[0] + Math.floor(Math.random() * (delay[1] - delay[0] + 1));
  const finish = () => {
    rec.status = status;
    rec.d = ++events;
    rec.td = nowUs();
    stats.inflight--;
    if (status === 200) {
      stats.ok++;
      okIds.add(e.id);
      finalIds.add(e.id);
    } else if (status === 503) {
      stats.retry++;
    } else {
      stats.reject++;
      if (e !== null) finalIds.add(e.id);
    }
    answer(res, status, status === 400 && e === null ? {error: 'not a delivery'} : undefined);
  };
  if (ms > 0) {
    setTimeout(finish, ms);
  } else {
    setImmediate(finish);
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'GET' && req.url === '/stats') {
      answer(res, 200, Object.assign({distinct_ok: okIds.size, distinct_final: finalIds.size},
          stats));
    } else if (req.method === 'POST' && req.url === '/control') {
      control(body, res);
    } else if (req.method === 'POST' && req.url === '/dump') {
      if (!recordFile) {
        answer(res, 409, {error: 'no --record file'});
      } else {
        answer(res, 200, {written: writeRecord()});
      }
    } else if (req.method === 'POST') {
      deliver(body, req, res);
    } else {
      answer(res, 405, {error: 'POST a delivery, or GET /stats'});
    }
  });
});
// libcurl keeps one connection per consumer worker open between entries: never close it.
server.keepAliveTimeout = 600000;
server.headersTimeout = 610000;
server.requestTimeout = 0;

function stop() {
  if (recordFile) writeRecord();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(portFile + '.tmp', `${server.address().port}\n`);
  fs.renameSync(portFile + '.tmp', portFile);
});

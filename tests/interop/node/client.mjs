// Drives mqtt.js (web/node_modules/mqtt, 5.16.0) through one scenario for tests/interop.
// Input (stdin, JSON): {url, options, caFile?, steps: [{op, ...}], timeoutMs}
// Output (stdout): one JSON object per line, what mqtt.js reported.
// Options go to mqtt.connect() as given (ALPNProtocols, protocolVersion, username, ...).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const mqtt = require("mqtt");

const scenario = JSON.parse(readFileSync(0, "utf8"));
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const options = { reconnectPeriod: 0, connectTimeout: 8000, ...scenario.options };
if (scenario.caFile) options.ca = readFileSync(scenario.caFile);

const hardStop = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(3);
}, scenario.timeoutMs ?? 20000);

const messages = [];
const waiting = [];
let closed = false;
const closeWaiters = [];

const client = mqtt.connect(scenario.url, options);
client.on("message", (topic, payload) => {
  messages.push({ topic, payload: payload.toString() });
  while (waiting.length) waiting.shift()();
});
client.on("error", (err) => say({ event: "error", code: err.code ?? null, message: err.message }));
client.on("disconnect", (packet) => say({ event: "disconnect", reasonCode: packet.reasonCode ?? null }));
client.on("close", () => {
  closed = true;
  say({ event: "close" });
  while (closeWaiters.length) closeWaiters.shift()();
});

const within = (ms, promise) =>
  Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve("timeout"), ms))]);

async function step(s) {
  if (s.op === "subscribe") {
    const granted = await within(
      s.timeoutMs ?? 5000,
      new Promise((resolve) =>
        client.subscribe(s.topic, { qos: 1 }, (err, g) =>
          resolve(err ? { error: err.message, code: err.code ?? null } : g),
        ),
      ),
    );
    say({ event: "suback", topic: s.topic, granted });
  } else if (s.op === "publish") {
    const result = await within(
      s.timeoutMs ?? 5000,
      new Promise((resolve) =>
        client.publish(s.topic, s.payload, { qos: 1 }, (err, packet) =>
          resolve(err ? { error: err.message, code: err.code ?? null } : { ok: true }),
        ),
      ),
    );
    say({ event: "puback", topic: s.topic, result });
  } else if (s.op === "expect_message") {
    const deadline = Date.now() + (s.timeoutMs ?? 5000);
    while (!messages.length && Date.now() < deadline) {
      await within(deadline - Date.now(), new Promise((resolve) => waiting.push(resolve)));
    }
    say({ event: "message", received: messages.splice(0) });
  } else if (s.op === "wait_close") {
    if (!closed) await within(s.timeoutMs ?? 5000, new Promise((r) => closeWaiters.push(r)));
    say({ event: "closed", closed });
  }
}

let connectedOnce = false;
client.once("connect", async (connack) => {
  connectedOnce = true;
  say({ event: "connect", reasonCode: connack.reasonCode ?? connack.returnCode ?? 0 });
  for (const s of scenario.steps ?? []) await step(s);
  client.end(true, () => {
    clearTimeout(hardStop);
    process.exit(0);
  });
});
client.once("close", () => {
  if (!connectedOnce) {
    clearTimeout(hardStop);
    setTimeout(() => process.exit(0), 50); // let pending output flush
  }
});

// Runs the calls in the cases file (argv[2]) with @grpc/grpc-js (gRPC's pure-JavaScript implementation for
// Node.js) and prints one JSON line per call: its name, the gRPC status code (a number), the status message, and
// how many response messages arrived. Requests and responses stay raw bytes: no generated code.
"use strict";

const fs = require("node:fs");
const grpc = require("@grpc/grpc-js");

const raw = (data) => data;

function run(testCase) {
  return new Promise((resolve) => {
    const client = new grpc.Client(testCase.target, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(testCase.metadata)) metadata.add(key, value);
    const options = testCase.deadline_ms ? { deadline: Date.now() + testCase.deadline_ms } : {};
    const request = Buffer.from(testCase.request_hex, "hex");
    let received = 0;
    const done = (status) => {
      client.close();
      resolve({ name: testCase.name, code: status.code, message: status.details ?? "", received });
    };
    if (testCase.streaming) {
      const call = client.makeServerStreamRequest(testCase.method, raw, raw, request, metadata, options);
      call.on("data", () => {
        received += 1;
      });
      call.on("error", () => {});
      call.on("status", done);
    } else {
      client.makeUnaryRequest(testCase.method, raw, raw, request, metadata, options, (error) => {
        if (!error) received = 1;
        done(error ?? { code: 0, details: "" });
      });
    }
  });
}

(async () => {
  const cases = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  for (const testCase of cases) {
    process.stdout.write(`${JSON.stringify(await run(testCase))}\n`);
  }
})();

